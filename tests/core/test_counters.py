"""Per-sample evaluation counts: a solver may report what each sample's step cost (`[B]`), and
`Solution.stats.vf_evals` adds up exactly those counts over the steps each sample ran."""

from __future__ import annotations

import dataclasses

import torch

import neuralct as nct

F64 = torch.float64


class _UnevenEuler(nct.Euler):
    """Euler whose step reports sample b as costing b + 1 evaluations (as a Newton method
    whose samples iterate different numbers of times would)."""

    def step(self, *args, **kwargs):
        out = super().step(*args, **kwargs)
        return dataclasses.replace(out, evals=torch.arange(1, out.y1.shape[0] + 1))


def test_per_sample_step_costs_add_up_over_each_samples_own_steps():
    t = torch.stack([torch.linspace(0.0, 1.0, 3, dtype=F64), torch.linspace(0.0, 2.0, 3, dtype=F64)])
    y0 = torch.ones(2, 1, dtype=F64)
    solve = lambda solver: nct.solve(  # noqa: E731
        nct.ODETerm(lambda t, y, args: -y), y0, t, solver=solver, controller=nct.ConstantStep(0.25)
    )
    plain, uneven = solve(nct.Euler()), solve(_UnevenEuler())
    assert plain.stats.steps.tolist() == [4, 8]  # sample 1's span is twice as long
    assert torch.equal(uneven.ys, plain.ys)
    # The start costs both the same; then sample 0 pays 1 per step and sample 1 pays 2.
    start = plain.stats.vf_evals - plain.stats.steps
    assert uneven.stats.vf_evals.tolist() == (start + torch.tensor([1 * 4, 2 * 8])).tolist()

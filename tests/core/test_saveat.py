"""Output control: `solve(..., saveat=SaveAt(steps=True))` and `SaveAt(ends=True)`.

Every step saved: one output per accepted step plus the start (against `Solution.stats`), at
the times the steps reached, with the values of the ordinary solve there; padded per sample
with a mask. Ends only: the same as a solve over the first and last time. Both per sample.
"""

from __future__ import annotations

import pytest
import torch

import neuralct as nct
from neuralct.events import Event
from neuralct.saveat import SaveAt

F64 = torch.float64
TIGHT = nct.PIDController(rtol=1e-9, atol=1e-11)


def van_der_pol(t, y, mu):
    x, v = y[:, 0], y[:, 1]
    return torch.stack([v, mu * (1 - x * x) * v - x], dim=1)


VDP = nct.ODETerm(van_der_pol)
MU = torch.tensor([0.5, 3.0, 8.0], dtype=F64)
Y0 = torch.tensor([[2.0, 0.0], [1.0, 1.0], [0.5, -1.0]], dtype=F64)
T = torch.tensor([[0.0, 1.0, 2.0, 4.0], [0.0, 0.5, 3.0, 5.0], [1.0, 2.0, 3.0, 3.5]], dtype=F64)


@pytest.mark.parametrize(
    ("solver", "controller"),
    [(nct.Tsit5(), TIGHT), (nct.Dopri8(), TIGHT), (nct.RK4(), nct.ConstantStep(0.03))],
    ids=["Tsit5", "Dopri8", "RK4-fixed"],
)
def test_every_accepted_step_is_saved_once_with_the_start(solver, controller):
    sol = nct.solve(VDP, Y0, T, args=MU, solver=solver, controller=controller, saveat=SaveAt(steps=True))
    counts = sol.mask.sum(dim=1)
    assert torch.equal(counts, sol.stats.accepted + 1)
    assert sol.ts.shape == sol.mask.shape == (3, int(counts.max()))
    assert sol.ys.shape == (*sol.ts.shape, 2)
    last = counts - 1
    assert torch.equal(sol.ts[:, 0], T[:, 0]) and torch.equal(sol.ys[:, 0], Y0)
    assert torch.equal(sol.ts.gather(1, last[:, None])[:, 0], T[:, -1])
    assert torch.equal(sol.ys[torch.arange(3), last], sol.y_final)
    for b in range(3):  # strictly increasing on a sample's steps, then its last one repeated
        n = int(counts[b])
        assert bool((sol.ts[b, 1:n] > sol.ts[b, : n - 1]).all())
        assert bool((sol.ts[b, n:] == sol.ts[b, n - 1]).all()) and bool((sol.ys[b, n:] == sol.ys[b, n - 1]).all())


def test_the_saved_steps_are_the_steps_of_a_solve_over_the_span():
    # The same steps as a solve saving at the first and last time only; each saved state is
    # that solve's dense output at the step's end.
    span = T[:, [0, -1]]
    plain = nct.solve(VDP, Y0, span, args=MU, controller=TIGHT, dense=True)
    sol = nct.solve(VDP, Y0, T, args=MU, controller=TIGHT, saveat=SaveAt(steps=True))
    for name in ("vf_evals", "steps", "accepted", "rejected"):
        assert torch.equal(getattr(sol.stats, name), getattr(plain.stats, name)), name
    torch.testing.assert_close(sol.ys, plain.evaluate(sol.ts), rtol=1e-13, atol=1e-13)
    assert torch.equal(sol.y_final, plain.y_final)


def test_fixed_steps_saved_equal_a_solve_saving_on_the_step_grid():
    t = torch.tensor([0.0, 2.0], dtype=F64)
    sol = nct.solve(VDP, Y0, t, args=MU, solver=nct.RK4(), controller=nct.ConstantStep(0.05), saveat=SaveAt(steps=True))
    grid = torch.linspace(0.0, 2.0, 41, dtype=F64)
    assert bool(sol.mask.all())
    torch.testing.assert_close(sol.ts, grid.expand(3, -1), rtol=0, atol=1e-15)
    on_grid = nct.solve(VDP, Y0, grid, args=MU, solver=nct.RK4(), controller=nct.ConstantStep(0.05))
    torch.testing.assert_close(sol.ys, on_grid.ys, rtol=1e-14, atol=1e-14)


def test_saved_steps_do_not_depend_on_batch_mates():
    sol = nct.solve(VDP, Y0, T, args=MU, controller=TIGHT, saveat=SaveAt(steps=True))
    for b in range(3):
        alone = nct.solve(
            VDP, Y0[b : b + 1], T[b : b + 1], args=MU[b : b + 1], controller=TIGHT, saveat=SaveAt(steps=True)
        )
        n = alone.ts.shape[1]
        assert torch.equal(sol.ts[b, :n], alone.ts[0]) and torch.equal(sol.ys[b, :n], alone.ys[0])


def test_a_terminal_event_is_the_last_saved_step():
    def height(t, y, args):
        return y[:, 0]

    sol = nct.solve(VDP, Y0, T, args=MU, controller=TIGHT, saveat=SaveAt(steps=True), event=Event(height))
    counts = sol.mask.sum(dim=1)
    assert torch.equal(counts, sol.stats.accepted + 1)
    last = torch.arange(3), counts - 1
    stopped = sol.status == int(nct.Status.EVENT)
    assert bool(stopped.any())
    assert torch.equal(sol.ts[last][stopped], sol.event_t[stopped])
    assert torch.equal(sol.ys[last][stopped], sol.event_y[stopped])


def test_saved_steps_carry_gradients():
    mu = torch.tensor([0.5, 2.0], dtype=F64, requires_grad=True)

    def outputs(mu):
        sol = nct.solve(
            VDP,
            Y0[:2],
            torch.tensor([[0.0, 1.0], [0.5, 1.2]], dtype=F64),
            args=mu,
            solver=nct.RK4(),
            controller=nct.ConstantStep(0.25),
            saveat=SaveAt(steps=True),
        )
        return sol.ys

    assert torch.autograd.gradcheck(outputs, (mu,))


@pytest.mark.parametrize(
    ("solver", "controller"), [(nct.Tsit5(), TIGHT), (nct.Dopri8(), TIGHT)], ids=["Tsit5", "Dopri8"]
)
def test_ends_only_is_a_solve_over_the_first_and_last_time(solver, controller):
    lengths = torch.tensor([4, 2, 3])
    sol = nct.solve(
        VDP, Y0, T, args=MU, solver=solver, controller=controller, saveat=SaveAt(ends=True), lengths=lengths
    )
    ends = torch.stack([T[:, 0], T.gather(1, (lengths - 1)[:, None])[:, 0]], dim=1)
    span = nct.solve(VDP, Y0, ends, args=MU, solver=solver, controller=controller)
    assert torch.equal(sol.ts, ends) and torch.equal(sol.ys, span.ys) and sol.mask is None
    assert torch.equal(sol.stats.vf_evals, span.stats.vf_evals)
    every = nct.solve(VDP, Y0, T, args=MU, solver=solver, controller=controller, lengths=lengths)
    if isinstance(solver, nct.Dopri8):  # it steps onto every save time: fewer steps without them
        assert bool((sol.stats.steps <= every.stats.steps).all()) and bool((sol.stats.steps < every.stats.steps).any())


def test_ends_only_with_dense_output_serves_any_time_in_the_span():
    sol = nct.solve(VDP, Y0, T, args=MU, controller=TIGHT, saveat=SaveAt(ends=True), dense=True)
    full = nct.solve(VDP, Y0, T, args=MU, controller=TIGHT)
    assert sol.ys.shape == (3, 2, 2)
    torch.testing.assert_close(sol.evaluate(T), full.ys, rtol=1e-7, atol=1e-8)


def test_a_sample_of_length_one_saves_its_start_only():
    lengths = torch.tensor([1, 4, 4])
    for saveat in (SaveAt(ends=True), SaveAt(steps=True)):
        sol = nct.solve(VDP, Y0, T, args=MU, controller=TIGHT, saveat=saveat, lengths=lengths)
        assert int(sol.stats.steps[0]) == 0 and torch.equal(sol.ys[0, -1], Y0[0])


def test_the_default_saveat_changes_nothing():
    plain = nct.solve(VDP, Y0, T, args=MU, controller=TIGHT)
    sol = nct.solve(VDP, Y0, T, args=MU, controller=TIGHT, saveat=SaveAt())
    assert torch.equal(sol.ys, plain.ys) and torch.equal(sol.stats.vf_evals, plain.stats.vf_evals) and sol.mask is None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(steps=True, ends=True), "one of `steps=True` and `ends=True`"),
        (dict(steps=1), "`steps` must be True or False"),
        (dict(ends="yes"), "`ends` must be True or False"),
    ],
)
def test_a_bad_saveat_is_refused_naming_the_argument(options, message):
    with pytest.raises(nct.InvalidInputError, match=message):
        SaveAt(**options)


def test_saving_steps_needs_backprop_and_neuralcts_loop():
    with pytest.raises(nct.InvalidInputError, match=r"`saveat=SaveAt\(steps=True\)` needs `gradient=Backprop"):
        nct.solve(VDP, Y0, T, args=MU, saveat=SaveAt(steps=True), gradient=nct.Backsolve())
    with pytest.raises(nct.InvalidInputError, match=r"`saveat=SaveAt\(steps=True\)` needs a step solver"):
        nct.solve(VDP, Y0, T, args=MU, saveat=SaveAt(steps=True), solver=nct.TorchDiffEq("dopri5"))
    with pytest.raises(nct.InvalidInputError, match="`saveat` must be a SaveAt"):
        nct.solve(VDP, Y0, T, args=MU, saveat=True)
    ends = nct.solve(VDP, Y0, T, args=MU, saveat=SaveAt(ends=True), gradient=nct.Backsolve())
    assert ends.ys.shape == (3, 2, 2)

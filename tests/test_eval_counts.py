"""Regression guard: the vector-field evaluations neuralct spends on fixed problems do not grow.

Counts are deterministic (float64, seeded, the same on 1 and 2 threads), unlike times, so they
are what a unit test can hold the solvers to. `eval_counts.json` beside this file records them;
a change that makes neuralct cheaper lowers a count, and the file should then be updated
(`python tests/test_eval_counts.py` prints the current counts). A small slack (0.5%) absorbs a
different CPU's last-bit rounding moving one step decision; anything beyond it is a regression.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import neuralct as nct
from neuralct import registry
from neuralct.data.datasets import load

BASELINE = json.loads(Path(__file__).with_name("eval_counts.json").read_text())
F64 = torch.float64
ADAPTIVE = nct.PIDController(rtol=1e-6, atol=1e-8)


def _neural_ode(solver: nct.AbstractSolver) -> int:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 32), torch.nn.Softplus(), torch.nn.Linear(32, 4), torch.nn.Tanh())
    net = net.double()
    y0 = torch.randn(16, 4, dtype=F64)
    solution = nct.solve(
        nct.ODETerm(lambda t, y, args: net(y)),
        y0,
        torch.linspace(0, 5, 10, dtype=F64),
        solver=solver,
        controller=ADAPTIVE,
    )
    return int(solution.stats.vf_evals.sum())


def _van_der_pol(solver: nct.AbstractSolver, controller: nct.PIDController) -> int:
    """16 samples with stiffness parameter mu from 1 to 20, each with its own step control."""
    mu = torch.linspace(1, 20, 16, dtype=F64)

    def field(t, y, args):
        x, v = y.unbind(-1)
        return torch.stack([v, mu * (1 - x**2) * v - x], dim=-1)

    start = torch.tensor([2.0, 0.0], dtype=F64).expand(16, 2)
    solution = nct.solve(
        nct.ODETerm(field), start, torch.linspace(0, 10, 5, dtype=F64), solver=solver, controller=controller
    )
    return int(solution.stats.vf_evals.sum())


def _model(name: str) -> int:
    """A seeded model's evaluations on 8 spirals under its own numerics, in eval mode."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(F64)
    try:
        batch = load("spirals", "test", size=8, length=12)
        torch.manual_seed(0)
        model = registry.model(name, channels=2, hidden=8, outputs=2).eval()
        with torch.no_grad():
            return int(model.run(batch).stats.vf_evals.sum())
    finally:
        torch.set_default_dtype(previous)


PROBLEMS = {
    "neural_ode_dopri5": lambda: _neural_ode(nct.Dopri5()),
    "neural_ode_tsit5": lambda: _neural_ode(nct.Tsit5()),
    "neural_ode_bosh3": lambda: _neural_ode(nct.Bosh3()),
    "van_der_pol_tsit5": lambda: _van_der_pol(nct.Tsit5(), ADAPTIVE),
    "van_der_pol_implicit_euler": lambda: _van_der_pol(nct.ImplicitEuler(), nct.PIDController(rtol=1e-4, atol=1e-6)),
    "model_ncde": lambda: _model("ncde"),
    "model_ltc": lambda: _model("ltc"),
    "model_tau_gru": lambda: _model("tau_gru"),
    "model_ode_rnn": lambda: _model("ode_rnn"),
}


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
def test_evaluation_counts_do_not_grow(problem: str) -> None:
    count = PROBLEMS[problem]()
    allowed = BASELINE[problem] * 1.005
    assert count <= allowed, f"{problem}: {count} evaluations, recorded {BASELINE[problem]}: the solver got costlier"


def test_every_problem_has_a_recorded_count() -> None:
    assert set(PROBLEMS) == set(BASELINE)


if __name__ == "__main__":
    print(json.dumps({name: run() for name, run in PROBLEMS.items()}, indent=1))

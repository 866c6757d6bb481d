"""Regression guard: on fixed problems neuralct spends no more vector-field evaluations, and
reaches no worse an error, than recorded.

Counts and errors are deterministic (float64, seeded, the same on 1 and 2 threads), unlike
times, so they are what a unit test can hold the solvers to. `eval_counts.json` beside this
file records, per problem, the evaluations and the error against a reference we did not
compute with the solve under test: SciPy's DOP853 at rtol = atol = 1e-12 for the ODEs; for the
models, the same model and weights solved by Dopri8 at rtol = atol = 1e-7 (its own error is
below 1e-6, under 1% of the models' errors). A count alone only bounds the work: a
controller that takes fewer, less accurate steps (an error norm that shrinks the error, a
tolerance applied to the wrong scale) would pass it, so each count is paired with its error.

The error of a problem is the geometric mean over samples of each sample's largest absolute
error: a Van der Pol sample that is near a relaxation jump at a save time has a phase error
1000x the others', which a maximum or an arithmetic mean would follow alone. A change that
makes neuralct cheaper or more accurate lowers a number; update the file then with
`make golden`, which recomputes it and shows the diff (`python tests/core/test_eval_counts.py` prints
the current values). The slack on counts (0.5%)
absorbs a different CPU's last-bit rounding moving one step decision; the slack on errors
(10%) absorbs what such a moved step does to the error. Plausible controller bugs fail: an
RMS norm divided by D instead of sqrt(D) takes 5% to 19% fewer evaluations at 1.2x to 2.2x
the error, a tolerance scaled by |y0| + |y1| instead of max(|y0|, |y1|) 4% to 13% fewer at
1.1x to 1.8x the error; `safety = 1` and a step exponent of 1/order instead of
1/(order + 1) cost more evaluations.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

import neuralct as nct
from neuralct import registry
from neuralct.data.datasets import load
from neuralct.models.base import SolveOptions

BASELINE = json.loads(Path(__file__).with_name("eval_counts.json").read_text())
COUNT_SLACK, ERROR_SLACK = 1.005, 1.10
F64 = torch.float64
ADAPTIVE = nct.PIDController(rtol=1e-6, atol=1e-8)
SCIPY_TIGHT = {"method": "DOP853", "rtol": 1e-12, "atol": 1e-12}


def typical_error(ys: torch.Tensor, reference: torch.Tensor) -> float:
    """Geometric mean over samples of each sample's largest absolute error; `ys` is `[B, ...]`."""
    worst = (ys - reference).abs().flatten(1).amax(dim=1)
    return float(worst.log().mean().exp())


def _neural_ode_problem() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """A seeded MLP field `[16, 4] -> [16, 4]`, its initial states and 10 save times on [0, 5]."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 32), torch.nn.Softplus(), torch.nn.Linear(32, 4), torch.nn.Tanh())
    return net.double(), torch.randn(16, 4, dtype=F64), torch.linspace(0, 5, 10, dtype=F64)


@functools.cache
def _neural_ode_reference() -> torch.Tensor:
    """`[16, 10, 4]` by SciPy, the batch flattened into one 64-dimensional system."""
    net, y0, ts = _neural_ode_problem()

    def field(t, y):
        with torch.no_grad():
            return net(torch.from_numpy(y).view(y0.shape)).flatten().numpy()

    sol = solve_ivp(field, (0.0, float(ts[-1])), y0.flatten().numpy(), t_eval=ts.numpy(), **SCIPY_TIGHT)
    return torch.from_numpy(sol.y.T.reshape(len(ts), *y0.shape)).transpose(0, 1)


def _neural_ode(solver: nct.AbstractSolver) -> tuple[int, float]:
    net, y0, ts = _neural_ode_problem()
    with torch.no_grad():
        solution = nct.solve(nct.ODETerm(lambda t, y, args: net(y)), y0, ts, solver=solver, controller=ADAPTIVE)
    return int(solution.stats.vf_evals.sum()), typical_error(solution.ys, _neural_ode_reference())


VAN_DER_POL_MU = torch.linspace(1, 20, 16, dtype=F64)
VAN_DER_POL_TIMES = torch.linspace(0, 10, 5, dtype=F64)


@functools.cache
def _van_der_pol_reference() -> torch.Tensor:
    """`[16, 5, 2]` by SciPy, one oscillator at a time."""
    solutions = []
    for mu in VAN_DER_POL_MU.tolist():
        field = lambda t, y, mu=mu: [y[1], mu * (1 - y[0] ** 2) * y[1] - y[0]]  # noqa: E731
        sol = solve_ivp(field, (0.0, 10.0), [2.0, 0.0], t_eval=VAN_DER_POL_TIMES.numpy(), **SCIPY_TIGHT)
        solutions.append(sol.y.T)
    return torch.from_numpy(np.stack(solutions))


def _van_der_pol(solver: nct.AbstractSolver, controller: nct.PIDController) -> tuple[int, float]:
    """16 samples with stiffness parameter mu from 1 to 20, each with its own step control."""

    def field(t, y, args):
        x, v = y.unbind(-1)
        return torch.stack([v, VAN_DER_POL_MU * (1 - x**2) * v - x], dim=-1)

    start = torch.tensor([2.0, 0.0], dtype=F64).expand(16, 2)
    solution = nct.solve(nct.ODETerm(field), start, VAN_DER_POL_TIMES, solver=solver, controller=controller)
    return int(solution.stats.vf_evals.sum()), typical_error(solution.ys, _van_der_pol_reference())


def _model(name: str, reference_solver: nct.AbstractSolver) -> tuple[int, float]:
    """A seeded model's evaluations on 8 spirals under its own numerics, in eval mode, and the
    error of its predictions against the same model solved by `reference_solver` at 1e-7."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(F64)
    try:
        batch = load("spirals", "test", size=8, length=12)
        torch.manual_seed(0)
        model = registry.model(name, channels=2, hidden=8, outputs=2).eval()
        tight = SolveOptions(reference_solver, nct.PIDController(rtol=1e-7, atol=1e-7), max_steps=100_000)
        with torch.no_grad():
            output, reference = model.run(batch), model.run(batch, tight)
        return int(output.stats.vf_evals.sum()), typical_error(output.predictions, reference.predictions)
    finally:
        torch.set_default_dtype(previous)


PROBLEMS = {
    "neural_ode_dopri5": lambda: _neural_ode(nct.Dopri5()),
    "neural_ode_tsit5": lambda: _neural_ode(nct.Tsit5()),
    "neural_ode_bosh3": lambda: _neural_ode(nct.Bosh3()),
    "van_der_pol_tsit5": lambda: _van_der_pol(nct.Tsit5(), ADAPTIVE),
    "van_der_pol_implicit_euler": lambda: _van_der_pol(nct.ImplicitEuler(), nct.PIDController(rtol=1e-4, atol=1e-6)),
    "van_der_pol_radau5": lambda: _van_der_pol(nct.Radau5(), nct.PIDController(rtol=1e-6, atol=1e-8, predictive=True)),
    "model_ncde": lambda: _model("ncde", nct.Dopri8()),
    "model_ltc": lambda: _model("ltc", nct.Dopri8()),
    "model_tau_gru": lambda: _model("tau_gru", nct.MethodOfSteps(nct.Dopri8())),
    "model_ode_rnn": lambda: _model("ode_rnn", nct.Dopri8()),
}


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
def test_evaluation_counts_do_not_grow_and_errors_do_not_either(problem: str) -> None:
    evals, error = PROBLEMS[problem]()
    recorded = BASELINE[problem]
    assert evals <= recorded["vf_evals"] * COUNT_SLACK, (
        f"{problem}: {evals} evaluations, recorded {recorded['vf_evals']}: the solver got costlier"
    )
    assert error <= recorded["error"] * ERROR_SLACK, (
        f"{problem}: error {error:.3g}, recorded {recorded['error']:.3g}: the solver got less accurate"
    )


def test_every_problem_has_a_recorded_count_and_error() -> None:
    assert set(PROBLEMS) == set(BASELINE)
    assert all(set(record) == {"vf_evals", "error"} for record in BASELINE.values())


def current_values() -> dict[str, dict[str, float]]:
    """What `eval_counts.json` should hold for the code as it is: counts, errors to 3 digits."""
    values = {}
    for name, run in PROBLEMS.items():
        evals, error = run()
        values[name] = {"vf_evals": evals, "error": float(f"{error:.3g}")}
    return values


if __name__ == "__main__":
    rows = [f" {json.dumps(name)}: {json.dumps(record)}" for name, record in current_values().items()]
    print("{\n" + ",\n".join(rows) + "\n}")

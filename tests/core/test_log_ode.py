"""The log-ODE method for neural CDEs: the depth-2 log-signature against Chen's identity, the Lie
bracket sign on a linear CDE against its exact solution, the one-gap window against the plain
CDE solve, padding, gradients, training through the registry and the named errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch

import neuralct as nct
from neuralct import registry
from neuralct.data.controls import control_path
from neuralct.data.series import Series, collate
from neuralct.errors import IncompatibleTermError, InvalidInputError
from neuralct.models.base import SolveOptions
from neuralct.models.log_ode import LogODE, log_signature
from neuralct.models.ncde import NeuralCDE

F64 = torch.float64
FINE = nct.ConstantStep(1 / 256)


def _series(length: int, seed: int, channels: int = 2) -> Series:
    gen = torch.Generator().manual_seed(seed)
    times = (0.2 + torch.rand(length, generator=gen, dtype=F64)).cumsum(0)
    return Series(times, torch.randn(length, channels, generator=gen, dtype=F64))


def _chen_log_signature(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Level 1 and the level-2 log-signature of the polyline through `points` [P, C]: the
    segments' signatures exp(d) multiplied by Chen's identity, then the log, all in float64."""
    level1, level2 = np.zeros(points.shape[1]), np.zeros((points.shape[1],) * 2)
    for step in np.diff(points, axis=0):
        level2 = level2 + np.outer(level1, step) + np.outer(step, step) / 2
        level1 = level1 + step
    return level1, level2 - np.outer(level1, level1) / 2


@pytest.mark.parametrize("kind", ["linear", "limited_hermite"])
def test_log_signature_matches_chens_identity_on_per_sample_windows(kind: str) -> None:
    batch = collate([_series(9, 1), _series(6, 2)])
    path = control_path(batch, kind)
    ends = torch.stack([batch.times[0, [0, 3, 5, 8]], torch.cat([batch.times[1, [1, 2, 5]], torch.tensor([99.0])])])
    increments, areas = log_signature(path, ends, path.jump_times())
    for b in range(2):
        for i in range(3):
            # The cubic's reference is a polyline through 4000 of its points (error ~ 1e-8).
            fine = torch.linspace(float(ends[b, i]), float(ends[b, i + 1]), 2 if kind == "linear" else 4000, dtype=F64)
            knots = batch.times[b][(batch.times[b] > fine[0]) & (batch.times[b] < fine[-1])]
            grid = torch.cat([fine, knots]).sort().values
            level1, level2 = _chen_log_signature(path.evaluate(grid.expand(2, -1))[b].numpy())
            np.testing.assert_allclose(increments[b, i].numpy(), level1, atol=1e-12)
            np.testing.assert_allclose(areas[b, i].numpy(), level2, atol=1e-12 if kind == "linear" else 1e-6)


def _linear_cde_errors(depth: int) -> list[float]:
    """Max errors at t = 1 of the log-ODE method with windows of 2, 4, 8 gaps on the linear CDE
    dz = sum_j M_j z dX^j along a 65-knot polyline, against its exact solution, the product of
    the matrix exponentials of the segments."""
    gen = torch.Generator().manual_seed(0)
    fields = 0.7 * torch.randn(3, 3, 3, generator=gen, dtype=F64)
    times = torch.linspace(0, 1, 65, dtype=F64)
    batch = collate([Series(times, torch.stack([torch.sin(2 * math.pi * times), torch.cos(3 * math.pi * times)], -1))])
    path = control_path(batch, "linear")
    points = path.evaluate(times[None])[0]
    exact = torch.ones(3, dtype=F64)
    for step in points.diff(dim=0):
        exact = torch.from_numpy(scipy.linalg.expm(torch.einsum("jab,j->ab", fields, step).numpy())) @ exact
    term = nct.ControlTerm(lambda t, z, args: torch.einsum("jab,nb->naj", fields, z), path)
    errors = []
    for window in (2, 4, 8):
        # RK4 steps of 1/256 inside the windows: their error (~1e-10) is far below the method's.
        solver = LogODE(window, depth, nct.RK4())
        solution = nct.solve(term, torch.ones(1, 3, dtype=F64), times[None], solver=solver, controller=FINE)
        errors.append(float((solution.ys[0, -1] - exact).abs().max()))
    return errors


def test_lie_brackets_make_the_log_ode_method_converge_faster_than_increments_alone() -> None:
    # Along a smooth path a window's Levy area is O(h^3), so depth 1 (increments only) has
    # global error O(h^2); depth 2 leaves the level-3 terms, O(h^4) here. A wrong bracket sign
    # doubles the area term instead of cancelling it and falls back to slope 2.
    depth1, depth2 = _linear_cde_errors(1), _linear_cde_errors(2)
    slopes1, slopes2 = np.diff(np.log2(depth1)), np.diff(np.log2(depth2))
    assert np.all((slopes1 > 1.5) & (slopes1 < 2.5)), depth1
    assert np.all((slopes2 > 3.3) & (slopes2 < 4.7)), depth2
    assert all(d2 < d1 / 20 for d1, d2 in zip(depth1, depth2))


def test_one_gap_windows_reduce_to_the_plain_cde_solve_with_padding() -> None:
    batch = collate([_series(9, 1), _series(5, 2), _series(7, 3)])
    model = NeuralCDE(channels=2, hidden=4, outputs=3, interpolation="linear", width=8).double()
    # One RK4 step per gap either way: on a gap the windowed field is f(z) dX/dt of the linear
    # path, and its Levy area vanishes, so the two solves agree to rounding.
    plain = model.run(batch, SolveOptions(nct.RK4(), nct.KnotToKnot())).predictions
    windowed = model.run(batch, SolveOptions(LogODE(window=1, solver=nct.RK4()), nct.KnotToKnot())).predictions
    torch.testing.assert_close(windowed, plain, atol=1e-12, rtol=0)


def test_a_sample_gets_the_same_prediction_alone_and_beside_a_longer_one() -> None:
    model = NeuralCDE(channels=2, hidden=4, outputs=2, width=8).double()
    options = SolveOptions(LogODE(window=3, solver=nct.RK4()), nct.KnotToKnot())
    alone = model.run(collate([_series(8, 4)]), options)
    together = model.run(collate([_series(8, 4), _series(20, 5)]), options)
    torch.testing.assert_close(together.predictions[:1], alone.predictions, atol=1e-12, rtol=0)
    # Windows end at gaps 3, 6, 7: three RK4 steps of 4 evaluations, the first slope and a fresh
    # one past each of the two inner window ends (where the windowed field jumps).
    assert int(alone.stats.vf_evals[0]) == int(together.stats.vf_evals[0]) == 15


def test_gradients_of_the_log_ode_solve_pass_gradcheck() -> None:
    times = [_series(5, 6).times, _series(4, 7).times]
    model = NeuralCDE(channels=2, hidden=2, outputs=1, width=3, depth=1).double()
    options = SolveOptions(LogODE(window=2, solver=nct.RK4()), nct.KnotToKnot())

    def predictions(first: torch.Tensor, second: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        batch = collate([Series(times[0], first), Series(times[1], second)])
        return torch.func.functional_call(model, {"field.net.0.weight": weight}, (batch, options))

    inputs = (torch.randn(5, 2, dtype=F64), torch.randn(4, 2, dtype=F64), model.field.net[0].weight.detach().clone())
    assert torch.autograd.gradcheck(predictions, tuple(x.requires_grad_(True) for x in inputs))


def test_a_neural_cde_trains_with_log_ode_from_the_registry() -> None:
    solver = registry.solver("log_ode", window=4, solver="rk4")
    assert solver == LogODE(4, 2, nct.RK4())
    batch = collate([_series(30, seed) for seed in range(4)])
    target = torch.tensor([0, 1, 0, 1])
    model = NeuralCDE(channels=2, hidden=8, outputs=2, width=16).double()
    options = SolveOptions(solver, nct.KnotToKnot())
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(5):
        loss = torch.nn.functional.cross_entropy(model(batch, options), target)
        optimizer.zero_grad()
        loss.backward()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
        optimizer.step()
        losses.append(float(loss))
    assert losses[-1] < losses[0]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"window": 0}, "`window` must be a positive int; got 0"),
        ({"depth": 3}, r"`depth` must be an int in \[1, 2\]; got 3"),
        ({"solver": "rk4"}, "`solver` must be a neuralct step solver"),
    ],
)
def test_bad_options_raise_named_errors(options: dict, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message.replace("(", r"\(")):
        LogODE(**options)


def test_a_term_that_is_not_a_control_term_is_refused_before_the_solve() -> None:
    with pytest.raises(IncompatibleTermError, match="LogODE cannot integrate an ODETerm; it accepts: ControlTerm"):
        nct.solve(nct.ODETerm(lambda t, y, args: -y), torch.ones(1, 1), torch.tensor([0.0, 1.0]), solver=LogODE())

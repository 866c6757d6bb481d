"""Controlled differential equations: interpolated control paths and neural CDEs, cross-checked
against torchcde (coefficients, evaluation, and `torchcde.cdeint` on the same problem)."""

from __future__ import annotations

import pytest
import torch
import torchcde
from _tableaus import ThreeEighths
from torch import nn

import neuralct as nct
from neuralct.paths.interpolation import CubicPath, LinearPath, fill_missing

F64 = torch.float64
B, L, C, H = 3, 8, 2, 4
KINDS = ("linear", "hermite", "natural")


def _path(kind: str, values: torch.Tensor, times: torch.Tensor | None = None):
    if kind == "linear":
        return LinearPath(values, times)
    return getattr(CubicPath, kind)(values, times)


def _torchcde_path(kind: str, values: torch.Tensor, times: torch.Tensor):
    """The same interpolation built by torchcde on a shared grid `times` [L]."""
    if kind == "linear":
        return torchcde.LinearInterpolation(torchcde.linear_interpolation_coeffs(values, times), times)
    coeffs = {
        "hermite": torchcde.hermite_cubic_coefficients_with_backward_differences,
        "natural": torchcde.natural_cubic_coeffs,
    }
    return torchcde.CubicSpline(coeffs[kind](values, times), times)


def _data(seed: int = 0, per_sample: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """`values` [B, L, C] and strictly increasing knots ([B, L] or [L]) with uneven gaps."""
    gen = torch.Generator().manual_seed(seed)
    values = torch.randn(B, L, C, generator=gen, dtype=F64)
    gaps = 0.2 + torch.rand(B if per_sample else 1, L - 1, generator=gen, dtype=F64)
    times = torch.cat([torch.zeros(gaps.shape[0], 1, dtype=F64), gaps.cumsum(dim=1)], dim=1)
    return values, times if per_sample else times[0]


def _inside(times: torch.Tensor, k: int = 5, seed: int = 1) -> torch.Tensor:
    """`[B, K]` random times inside each row's knot range, off the knots."""
    gen = torch.Generator().manual_seed(seed)
    grid = times.expand(B, -1)
    return grid[:, :1] + (grid[:, -1:] - grid[:, :1]) * torch.rand(B, k, generator=gen, dtype=F64).clamp(0.01, 0.99)


@pytest.mark.parametrize("kind", KINDS)
def test_paths_pass_through_the_observations(kind):
    values, times = _data()
    path = _path(kind, values, times)
    assert torch.allclose(path.evaluate(times), values, atol=1e-12)
    assert path.evaluate(times[:, 3]).shape == (B, C)
    assert path.evaluate(times).shape == (B, L, C)


@pytest.mark.parametrize("kind", KINDS)
def test_derivative_matches_finite_differences(kind):
    values, times = _data()
    path = _path(kind, values, times)
    t = _inside(times)
    eps = 1e-6
    numeric = (path.evaluate(t + eps) - path.evaluate(t - eps)) / (2 * eps)
    assert torch.allclose(path.derivative(t), numeric, atol=1e-7)


@pytest.mark.parametrize("kind", KINDS)
def test_per_sample_evaluation_equals_torchcde_row_by_row(kind):
    values, times = _data()
    path = _path(kind, values, times)
    t = _inside(times, k=1)[:, 0]
    for b in range(B):
        theirs = _torchcde_path(kind, values[b : b + 1], times[b])
        assert torch.allclose(path.evaluate(t)[b], theirs.evaluate(t[b])[0], atol=1e-12)
        assert torch.allclose(path.derivative(t)[b], theirs.derivative(t[b])[0], atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_missing_values_are_handled_as_torchcde_handles_them(kind):
    values, times = _data(per_sample=False)
    values[0, 0, 0] = values[0, 3, 1] = values[1, 4:6, 0] = values[2, -1, :] = torch.nan
    values[2, :, 1] = torch.nan  # a channel never observed
    path, theirs = _path(kind, values, times), _torchcde_path(kind, values, times)
    for t in _inside(times)[0]:
        assert torch.allclose(path.evaluate(t), theirs.evaluate(t), atol=1e-12)
        assert torch.allclose(path.derivative(t), theirs.derivative(t), atol=1e-12)
    assert torch.equal(fill_missing(values, times.expand(B, -1)), torchcde.linear_interpolation_coeffs(values, times))


def test_natural_spline_on_per_sample_grids_equals_torchcde_on_each_grid():
    values, times = _data()
    path = CubicPath.natural(values, times)
    assert path.coeffs.shape == (B, L - 1, 4, C)
    for b in range(B):
        coeffs = torchcde.natural_cubic_coeffs(values[b : b + 1], times[b])
        ours = CubicPath.from_torchcde(coeffs, times[b])
        assert torch.allclose(path.coeffs[b], ours.coeffs[0], atol=1e-12)


@pytest.mark.parametrize("kind", ["linear", "hermite"])
def test_causal_paths_do_not_change_when_later_observations_are_appended(kind):
    values, times = _data(per_sample=False)
    short = _path(kind, values[:, :5], times[:5])
    full = _path(kind, values, times)
    past = torch.linspace(float(times[0]), float(times[4]), 17, dtype=F64).expand(B, -1)
    # Before the last knot of the short path both use the same pieces: bit-for-bit equal.
    assert torch.equal(short.evaluate(past[:, :-1]), full.evaluate(past[:, :-1]))
    assert torch.equal(short.derivative(past[:, :-1]), full.derivative(past[:, :-1]))
    assert torch.allclose(short.evaluate(past[:, -1]), full.evaluate(past[:, -1]), atol=1e-14)


def test_natural_cubic_spline_is_not_causal():
    values, times = _data(per_sample=False)
    past = torch.linspace(float(times[0]), float(times[4]), 17, dtype=F64).expand(B, -1)
    short, full = CubicPath.natural(values[:, :5], times[:5]), CubicPath.natural(values, times)
    assert not torch.allclose(short.evaluate(past), full.evaluate(past))


def test_linear_path_declares_its_interior_knots_as_jump_times():
    values, times = _data()
    assert torch.equal(LinearPath(values, times).jump_times(), times[:, 1:-1])
    assert CubicPath.hermite(values, times).jump_times() is None
    assert LinearPath(values).times[0].tolist() == list(range(L))


def test_derivative_is_right_continuous_at_knots():
    values, times = _data()
    path = LinearPath(values, times)
    slopes = (values[:, 4] - values[:, 3]) / (times[:, 4] - times[:, 3])[:, None]
    assert torch.allclose(path.derivative(times[:, 3]), slopes)


def test_float64_knots_over_float32_values():
    values, times = _data()
    path = CubicPath.hermite(values.float(), times)
    assert path.times.dtype == torch.float64 and path.evaluate(times[:, 2]).dtype == torch.float32
    assert torch.allclose(path.evaluate(times).double(), values, atol=1e-5)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda v, t: LinearPath(v, t.flip(1)), "strictly increasing"),
        (lambda v, t: LinearPath(v[0], t), r"\[B, L, C\]"),
        (lambda v, t: LinearPath(v, t[:, :-1]), "must have shape"),
        (lambda v, t: LinearPath(v[:, :1], t[:, :1]), "at least 2"),
        (lambda v, t: LinearPath(v, t.float().int()), "floating"),
        (lambda v, t: CubicPath.natural(v.index_fill(1, torch.tensor([2]), torch.nan), t), "shared time grid"),
        (lambda v, t: CubicPath.from_torchcde(v, t), "torchcde cubic coefficients"),
        (lambda v, t: LinearPath(v, t).evaluate(torch.zeros(B + 1)), "with B = 3"),
    ],
)
def test_bad_path_inputs_raise_named_errors(build, message):
    values, times = _data()
    with pytest.raises(nct.InvalidInputError, match=message):
        build(values, times)


# ------------------------------------------------------------------- neural CDEs


class CDEFunc(nn.Module):
    """A small neural CDE vector field: z [B, H] -> [B, H, C]."""

    def __init__(self, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.net = nn.Sequential(nn.Linear(H, 16), nn.Tanh(), nn.Linear(16, H * C)).to(F64)

    def forward(self, t, z):
        return torch.tanh(self.net(z)).view(*z.shape[:-1], H, C)


def _ours(func: CDEFunc):
    return lambda t, z, args: func(t, z)


def _hermite_problem(per_sample_t: bool = False):
    values, times = _data(per_sample=False)
    coeffs = torchcde.hermite_cubic_coefficients_with_backward_differences(values, times)
    z0 = torch.randn(B, H, generator=torch.Generator().manual_seed(5), dtype=F64)
    return coeffs, times, z0


@pytest.mark.parametrize(
    "ours, method, tol",
    [
        (ThreeEighths(), "rk4", 1e-12),
        (nct.Midpoint(), "midpoint", 1e-12),
        (nct.Euler(), "euler", 1e-12),
        (nct.RK4(), "rk4", 1e-6),
    ],
)
def test_neural_cde_fixed_step_equals_torchcde_cdeint(ours, method, tol):
    """Same Hermite coefficients, same step grid (every save time, knots included): identical
    methods agree to rounding; our classic RK4 and torchdiffeq's "rk4" (Kutta's 3/8 rule)
    agree to their fourth-order step error."""
    coeffs, times, z0 = _hermite_problem()
    func = CDEFunc()
    grid = torch.cat([times, torch.linspace(float(times[0]), float(times[-1]), 401, dtype=F64)]).unique()
    theirs = torchcde.cdeint(
        torchcde.CubicSpline(coeffs, times),
        func,
        z0,
        grid,
        adjoint=False,
        method=method,
        options=dict(grid_constructor=lambda f, y0, t: t),
    )
    term = nct.ControlTerm(_ours(func), CubicPath.from_torchcde(coeffs, times))
    sol = nct.solve(term, z0, grid, solver=ours, controller=nct.ConstantStep(1.0))  # one step per save interval
    assert sol.stats.steps[0] == len(grid) - 1
    assert (sol.ys - theirs).abs().max() < tol


def test_neural_cde_adaptive_dopri5_matches_torchcde_at_tight_tolerance():
    coeffs, times, z0 = _hermite_problem()
    func = CDEFunc()
    theirs = torchcde.cdeint(
        torchcde.CubicSpline(coeffs, times), func, z0, times, adjoint=False, method="dopri5", rtol=1e-11, atol=1e-11
    )
    term = nct.ControlTerm(_ours(func), CubicPath.from_torchcde(coeffs, times))
    sol = nct.solve(term, z0, times, solver=nct.Dopri5(), controller=nct.PIDController(rtol=1e-11, atol=1e-11))
    assert (sol.ys - theirs).abs().max() < 1e-7  # measured 7e-9


class WithoutJumps:
    """The same control path, hiding its jump times from the solver."""

    def __init__(self, path):
        self.path = path

    def evaluate(self, t):
        return self.path.evaluate(t)

    def derivative(self, t):
        return self.path.derivative(t)


def test_linear_cde_stepping_onto_knots_is_accurate_and_cheaper():
    values, times = _data(per_sample=False)
    z0 = torch.randn(B, H, generator=torch.Generator().manual_seed(2), dtype=F64)
    func = CDEFunc()
    coeffs = torchcde.linear_interpolation_coeffs(values, times)
    reference = torchcde.cdeint(
        torchcde.LinearInterpolation(coeffs, times),
        func,
        z0,
        times,
        adjoint=False,
        method="dopri5",
        rtol=1e-12,
        atol=1e-12,
        options=dict(jump_t=times[1:-1]),
    )
    path = LinearPath(values, times)
    pid = nct.PIDController(rtol=1e-7, atol=1e-7)
    jumps = nct.solve(nct.ControlTerm(_ours(func), path), z0, times, solver=nct.Dopri5(), controller=pid)
    smooth = nct.solve(nct.ControlTerm(_ours(func), WithoutJumps(path)), z0, times, solver=nct.Dopri5(), controller=pid)
    assert (jumps.ys - reference).abs().max() < 1e-5
    assert (jumps.stats.steps < smooth.stats.steps).all()
    assert jumps.stats.steps.sum() * 2 < smooth.stats.steps.sum()


def test_linear_cde_with_jump_times_converges_at_fourth_order_with_rk4():
    """Every stage of a step ending on a knot sees the slope before the knot, so the order of
    RK4 survives the kinks of a piecewise-linear control."""
    values, times = _data(per_sample=False)
    z0 = torch.randn(B, H, generator=torch.Generator().manual_seed(2), dtype=F64)
    term = nct.ControlTerm(_ours(CDEFunc()), LinearPath(values, times))
    fine = nct.solve(term, z0, times, solver=nct.Dopri8(), controller=nct.PIDController(rtol=1e-12, atol=1e-12))
    errors = [
        (nct.solve(term, z0, times, solver=nct.RK4(), controller=nct.ConstantStep(dt)).ys - fine.ys).abs().max()
        for dt in (0.08, 0.04)
    ]
    assert errors[0] / errors[1] > 10  # 16 for fourth order; 2 if a knot were crossed on the wrong side


def test_per_sample_knot_grids_solve_each_sample_as_if_alone():
    values, times = _data()
    z0 = torch.randn(B, H, generator=torch.Generator().manual_seed(3), dtype=F64)
    # An elementwise field: batched matrix products could round differently for other batch
    # sizes, and adaptive stepping amplifies such 1e-17 differences.
    weight = torch.randn(H, C, generator=torch.Generator().manual_seed(4), dtype=F64)
    f = lambda t, z, args: torch.tanh(z[..., None] * weight + 0.5)  # noqa: E731
    pid = nct.PIDController(rtol=1e-6, atol=1e-8)
    for kind in ("linear", "hermite"):
        batch = nct.solve(nct.ControlTerm(f, _path(kind, values, times)), z0, times, solver=nct.Tsit5(), controller=pid)
        for b in range(B):
            alone = nct.ControlTerm(f, _path(kind, values[b : b + 1], times[b]))
            single = nct.solve(alone, z0[b : b + 1], times[b], solver=nct.Tsit5(), controller=pid)
            assert torch.equal(batch.ys[b], single.ys[0])
            assert batch.stats.steps[b] == single.stats.steps[0]


class _CountingPath:
    """Delegates to `path`, counting `derivative` calls; `batched_times` as told."""

    def __init__(self, path, batched_times: bool):
        self.path, self.batched_times, self.queries = path, batched_times, []

    def evaluate(self, t):
        return self.path.evaluate(t)

    def derivative(self, t):
        self.queries.append(tuple(t.shape))
        return self.path.derivative(t)

    def jump_times(self):
        return self.path.jump_times()


@pytest.mark.parametrize("solver", [nct.Tsit5(), nct.RK4()], ids=["fsal", "not-fsal"])
def test_a_path_taking_many_times_per_sample_is_queried_once_per_step_with_the_same_result(solver):
    values, times = _data()
    z0 = torch.randn(B, H, generator=torch.Generator().manual_seed(3), dtype=F64)
    f = lambda t, z, args: torch.tanh(z[..., None] * torch.ones(C, dtype=F64) + 0.5)  # noqa: E731
    controller = nct.PIDController(rtol=1e-6, atol=1e-8) if solver.adaptive else nct.ConstantStep(0.1)
    solves = {}
    for batched in (True, False):
        path = _CountingPath(_path("linear", values, times), batched)
        solves[batched] = nct.solve(nct.ControlTerm(f, path), z0, times, solver=solver, controller=controller), path
    (batched, batched_path), (alone, alone_path) = solves[True], solves[False]
    assert torch.equal(batched.ys, alone.ys)
    stages = len(solver.nodes)
    # One [B, stages] query per loop iteration; [B] ones only for the slope at the start and
    # after each knot the linear path's derivative jumps at. The loop looks at the device every
    # few iterations, so it may run a few no-op iterations past the slowest sample's last step.
    iterations = batched_path.queries.count((B, stages))
    assert int(batched.stats.steps.max()) <= iterations < int(batched.stats.steps.max()) + 8
    assert set(batched_path.queries) == {(B,), (B, stages)}
    assert set(alone_path.queries) == {(B,)} and len(alone_path.queries) > len(batched_path.queries)


def test_gradients_reach_the_observations_and_the_vector_field():
    values, times = _data()
    values.requires_grad_(True)
    func = CDEFunc()
    z0 = torch.randn(B, H, dtype=F64)
    sol = nct.solve(nct.ControlTerm(_ours(func), CubicPath.hermite(values, times)), z0, times, solver=nct.Tsit5())
    sol.ys[:, -1].square().sum().backward()
    assert values.grad is not None and values.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in func.parameters())


def test_float32_state_over_float64_times_solves_a_linear_cde():
    values, times = _data()
    z0 = torch.randn(B, H, generator=torch.Generator().manual_seed(6), dtype=F64)
    weight = torch.randn(H, C, generator=torch.Generator().manual_seed(4), dtype=F64)

    def f(t, z, args):
        return torch.tanh(z[..., None] * weight.to(z.dtype) + 0.5)

    pid = nct.PIDController(rtol=1e-5, atol=1e-6)
    exact = nct.solve(nct.ControlTerm(f, LinearPath(values, times)), z0, times, solver=nct.Tsit5(), controller=pid)
    single = nct.solve(
        nct.ControlTerm(f, LinearPath(values.float(), times)), z0.float(), times, solver=nct.Tsit5(), controller=pid
    )
    assert single.ys.dtype == torch.float32 and single.succeeded.all()
    assert torch.allclose(single.ys.double(), exact.ys, atol=1e-4)


def test_a_field_returning_the_wrong_matrix_shape_is_named():
    values, times = _data(per_sample=False)  # [B, L, C] and [L]
    path = LinearPath(values, times)
    batch, channels = values.shape[0], values.shape[-1]
    term = nct.ControlTerm(lambda t, z, args: torch.zeros(batch, 3, channels + 1, dtype=F64), path)
    expected = (
        rf"ControlTerm must return a tensor of shape \({batch}, 3, {channels}\)"
        rf".* got Tensor of shape \({batch}, 3, {channels + 1}\)"
    )
    with pytest.raises(nct.IncompatibleTermError, match=expected):
        nct.solve(term, torch.zeros(batch, 3, dtype=F64), times)

"""LSSL: recurrence == convolution == explicit powers, irregular steps == the continuous system, resampling."""

from __future__ import annotations

import math

import pytest
import torch

import neuralct as nct
from neuralct.errors import InvalidInputError
from neuralct.models.ssm.deep import DeepSSM, param_groups
from neuralct.models.ssm.hippo import hippo_legs
from neuralct.models.ssm.kernels import causal_convolution, krylov, power_kernel
from neuralct.models.ssm.lssl import LSSL
from neuralct.paths.piecewise_constant import PiecewiseConstantPath
from neuralct.solvers.linear import GBT, ZOH
from neuralct.terms.linear import LinearTerm

DTYPE = torch.float64
DISCRETIZATIONS = [("gbt", 0.0), ("gbt", 0.5), ("gbt", 1.0), ("zoh", 0.5)]


def _layer(method: str = "gbt", alpha: float = 0.5, **options) -> LSSL:
    torch.manual_seed(0)
    options = {"dt_min": 0.02, "dt_max": 0.2, **options}
    return LSSL(3, 6, 2, method=method, alpha=alpha, **options).to(DTYPE)


def _explicit_powers(layer: LSSL, u: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    """$y_k = \\sum_{j \\le k} C \\bar A^{k-j} \\bar B u_j + C \\bar A^{k+1} x_0 + D u_k$ term by term."""
    a_bar, b_bar = layer.discretize(layer.dt)
    length = u.shape[1]
    power = [torch.linalg.matrix_power(a_bar, k) for k in range(length + 1)]
    kernel = torch.stack([torch.einsum("hmn,hnk,hk->hm", layer.c, power[k], b_bar) for k in range(length)])
    y = torch.zeros(u.shape[0], length, *layer.d.shape, dtype=DTYPE)
    for k in range(length):
        y[:, k] = torch.einsum("jhm,bjh->bhm", kernel[: k + 1].flip(0), u[:, : k + 1])
        y[:, k] += torch.einsum("hmn,hnk,bhk->bhm", layer.c, power[k + 1], x0) + layer.d * u[:, k, :, None]
    return y.flatten(-2)


@pytest.mark.parametrize("method, alpha", DISCRETIZATIONS)
@pytest.mark.parametrize("initial_state", [False, True])
def test_recurrence_convolution_and_explicit_powers_agree(method: str, alpha: float, initial_state: bool) -> None:
    layer = _layer(method, alpha)
    u = torch.randn(2, 37, 3, dtype=DTYPE)
    x0 = torch.randn(2, 3, 6, dtype=DTYPE) if initial_state else torch.zeros(2, 3, 6, dtype=DTYPE)
    given = x0 if initial_state else None
    convolution = layer(u, x0=given, mode="conv")
    recurrence = layer(u, x0=given, mode="recurrent")
    per_step = layer(u, x0=given, dt=torch.ones(2, 37, dtype=DTYPE), mode="recurrent")
    torch.testing.assert_close(convolution, recurrence, atol=1e-10, rtol=0)
    torch.testing.assert_close(per_step, recurrence, atol=1e-10, rtol=0)
    torch.testing.assert_close(convolution, _explicit_powers(layer, u, x0), atol=1e-10, rtol=0)


@pytest.mark.parametrize("length", [1, 2, 5, 16, 37])
def test_krylov_by_squaring_equals_explicit_powers(length: int) -> None:
    a = torch.randn(4, 5, 5, dtype=DTYPE) / 5  # spectral radius about 1/2: powers stay O(1)
    v = torch.randn(4, 5, 2, dtype=DTYPE)
    expected = torch.stack([torch.linalg.matrix_power(a, k) @ v for k in range(length)], dim=1)
    torch.testing.assert_close(krylov(a, v, length), expected, atol=1e-12, rtol=0)


@pytest.mark.parametrize("length", [1, 2, 5, 16, 37])
def test_baby_step_giant_step_kernel_equals_explicit_powers(length: int) -> None:
    a = torch.randn(4, 5, 5, dtype=DTYPE) / 5
    left, right = torch.randn(4, 3, 5, dtype=DTYPE), torch.randn(4, 5, 2, dtype=DTYPE)
    expected = torch.stack([left @ torch.linalg.matrix_power(a, k) @ right for k in range(length)], dim=-1)
    torch.testing.assert_close(power_kernel(a, left, right, length), expected, atol=1e-12, rtol=0)


def test_fft_convolution_is_causal_and_equals_the_direct_sum() -> None:
    u, k = torch.randn(3, 20, dtype=DTYPE), torch.randn(3, 20, dtype=DTYPE)
    direct = torch.stack([(k[:, : t + 1].flip(-1) * u[:, : t + 1]).sum(-1) for t in range(20)], dim=-1)
    torch.testing.assert_close(causal_convolution(u, k), direct, atol=1e-12, rtol=0)


def _irregular_problem(layer: LSSL) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, LinearTerm]:
    """Random steps per sample; the continuous system in grid time: feature h runs at rate Delta_h."""
    torch.manual_seed(1)
    u = torch.randn(2, 15, 3, dtype=DTYPE)
    dt = 0.2 + 2 * torch.rand(2, 15, dtype=DTYPE)
    times = torch.cumsum(dt, dim=1)
    scale = layer.dt.detach()
    term = LinearTerm(scale[:, None, None] * layer.a, scale[:, None] * layer.b, PiecewiseConstantPath(u, times))
    grid = torch.cat([times[:, :1] - dt[:, :1], times], dim=1)  # x0 is the state at t_{-1} = t_0 - dt_0
    return u, dt, grid, term


def _solved_output(layer: LSSL, term: LinearTerm, u, x0, grid, **solve_options) -> torch.Tensor:
    states = nct.solve(term, x0, grid, **solve_options).ys[:, 1:]  # [B, L, H, N]
    return (torch.einsum("hmn,blhn->blhm", layer.c, states) + layer.d * u[..., None]).flatten(-2).detach()


def test_irregular_zoh_recurrence_equals_an_adaptive_solve_of_the_continuous_system() -> None:
    layer = _layer("zoh")
    u, dt, grid, term = _irregular_problem(layer)
    x0 = torch.randn(2, 3, 6, dtype=DTYPE)
    solved = _solved_output(layer, term, u, x0, grid, controller=nct.PIDController(rtol=1e-10, atol=1e-12))
    torch.testing.assert_close(layer(u, dt=dt, x0=x0).detach(), solved, atol=1e-6, rtol=0)


@pytest.mark.parametrize("method, alpha", DISCRETIZATIONS)
def test_irregular_recurrence_equals_the_matching_discretization_solver(method: str, alpha: float) -> None:
    layer = _layer(method, alpha)
    u, dt, grid, term = _irregular_problem(layer)
    x0 = torch.randn(2, 3, 6, dtype=DTYPE)
    solver = ZOH() if method == "zoh" else GBT(alpha=alpha)
    solved = _solved_output(layer, term, u, x0, grid, solver=solver, controller=nct.ConstantStep(100.0))
    torch.testing.assert_close(layer(u, dt=dt, x0=x0).detach(), solved, atol=1e-10, rtol=0)


@pytest.mark.parametrize("method", ["gbt", "zoh"])
def test_gradients_through_krylov_and_discretization_pass_gradcheck(method: str) -> None:
    layer = _layer(method)
    log_dt, a = layer.log_dt.detach().clone(), layer.a.detach().clone()
    u = torch.randn(1, 9, 3, dtype=DTYPE)
    x0 = torch.randn(1, 3, 6, dtype=DTYPE)

    def output(log_dt: torch.Tensor, a: torch.Tensor, u: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(layer, {"log_dt": log_dt, "a": a}, (u,), {"x0": x0, "mode": "conv"})

    inputs = tuple(t.requires_grad_() for t in (log_dt, a, u, x0))
    assert torch.autograd.gradcheck(output, inputs)


def test_steps_stay_positive_when_the_log_step_is_driven_far_down() -> None:
    layer = _layer()
    optimizer = torch.optim.SGD([layer.log_dt], lr=100.0)
    for _ in range(3):
        optimizer.zero_grad()
        layer.log_dt.sum().backward()
        optimizer.step()
    assert bool((layer.log_dt < -100).all()) and bool((layer.dt > 0).all())
    assert bool(torch.isfinite(layer(torch.randn(1, 8, 3, dtype=DTYPE))).all())


def test_twice_the_rate_with_half_the_step_matches_the_output_at_shared_times() -> None:
    layer = _layer(dt_min=0.01, dt_max=0.01)
    errors = []
    for points in (64, 128):
        coarse = torch.linspace(0, 1, points + 1, dtype=DTYPE)[1:]
        fine = torch.linspace(0, 1, 2 * points + 1, dtype=DTYPE)[1:]
        signal = lambda t: torch.stack([torch.sin(2 * math.pi * t), torch.cos(3 * t), t**2], dim=-1)[None]
        at_rate = layer(signal(coarse)).detach()
        at_double_rate = layer(signal(fine), dt_scale=0.5).detach()[:, 1::2]
        errors.append((at_rate - at_double_rate).abs().max().item() / at_rate.abs().max().item())
    assert errors[0] < 0.05
    assert errors[1] < 0.6 * errors[0]  # a discretization error: it shrinks as the grid is refined


def test_learning_rate_groups_hold_a_b_and_the_log_step() -> None:
    model = DeepSSM(lambda h: LSSL(h, 4), d_input=1, d_model=3, n_layers=2, d_output=5)
    groups = param_groups(model, lr=1e-2, lr_ssm=1e-4, lr_dt=1e-3, weight_decay=0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    by_lr = {g["lr"]: sorted(names[id(p)].rsplit(".", 1)[-1] for p in g["params"]) for g in groups}
    assert by_lr[1e-4] == ["a", "a", "b", "b"]
    assert by_lr[1e-3] == ["log_dt", "log_dt"]
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0, 0.0]


def test_a_frozen_layer_keeps_a_and_b_out_of_the_parameters() -> None:
    layer = LSSL(3, 4, learn=False)
    assert {n for n, _ in layer.named_parameters()} == {"log_dt", "c", "d"}
    assert [len(g["params"]) for g in param_groups(layer, lr=1e-2)] == [2, 1]
    torch.testing.assert_close(layer.a, hippo_legs(4)[0])


def test_eval_mode_reuses_the_kernel_until_a_parameter_changes() -> None:
    layer = _layer().eval()
    u = torch.randn(2, 10, 3, dtype=DTYPE)
    with torch.no_grad():
        layer(u)
        cached = layer._cache[1]
        layer(u)
        assert layer._cache[1] is cached
        layer.c.mul_(2.0)
        layer(u)
        assert layer._cache[1] is not cached
    torch.testing.assert_close(layer._cache[1], layer.kernel(10).detach())


def test_deep_model_pools_and_reaches_every_parameter() -> None:
    torch.manual_seed(0)
    u = torch.randn(2, 12, 1)
    for pool, shape in (("mean", (2, 4)), ("last", (2, 4)), ("none", (2, 12, 4)), (slice(6, None), (2, 4))):
        model = DeepSSM(lambda h: LSSL(h, 4, channels=2), 1, 8, 2, 4, pool=pool, dropout=0.1, prenorm=False)
        out = model(u, layer_kwargs={"dt_scale": 0.5})
        assert tuple(out.shape) == shape
    out.sum().backward()
    assert all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in model.parameters())


BAD_CALLS = [
    ("`u` must be a tensor", lambda layer: layer(torch.randn(2, 5, 4))),
    ("`dt` must be a tensor", lambda layer: layer(torch.randn(2, 5, 3), dt=torch.ones(5))),
    ("`dt` must be > 0", lambda layer: layer(torch.randn(2, 5, 3), dt=torch.zeros(2, 5))),
    ("needs a uniform grid", lambda layer: layer(torch.randn(2, 5, 3), dt=torch.rand(2, 5) + 1, mode="conv")),
    ("`mode` must be one of", lambda layer: layer(torch.randn(2, 5, 3), mode="fft")),
    ("`dt_scale` must be a positive", lambda layer: layer(torch.randn(2, 5, 3), dt_scale=0.0)),
    ("`x0` must be a tensor", lambda layer: layer(torch.randn(2, 5, 3), x0=torch.zeros(2, 3, 5))),
]
BAD_LAYERS = [
    ("`d_state` must be a positive int", lambda: LSSL(3, 0)),
    ("`dt_min`, `dt_max` must satisfy", lambda: LSSL(3, 4, dt_min=0.1, dt_max=0.01)),
    ("`method` must be one of", lambda: LSSL(3, 4, method="euler")),
    ("`alpha` must be a finite number", lambda: LSSL(3, 4, alpha=2.0)),
    ("`a` must be a tensor, 'random' or one of", lambda: LSSL(3, 4, a="fourier")),
    ("`a` must be a tensor [N, N]", lambda: LSSL(3, 4, a=torch.eye(3), b=torch.ones(3))),
    ("`b` must be a tensor [N]", lambda: LSSL(3, 4, a=-torch.eye(4))),
    ("`b` is taken from the builder", lambda: LSSL(3, 4, b=torch.ones(4))),
    ("`pool` must be one of", lambda: DeepSSM(lambda h: LSSL(h, 4), 1, 3, 1, 2, pool="max")),
    ("`mix` must be one of", lambda: DeepSSM(lambda h: LSSL(h, 4), 1, 3, 1, 2, mix="conv")),
    ("`n_layers` must be a positive int", lambda: DeepSSM(lambda h: LSSL(h, 4), 1, 3, 0, 2)),
    ("`dropout` must be a finite number", lambda: DeepSSM(lambda h: LSSL(h, 4), 1, 3, 1, 2, dropout=1.0)),
    ("selects no step", lambda: DeepSSM(lambda h: LSSL(h, 4), 1, 3, 1, 2, pool=slice(9, None))(torch.ones(1, 5, 1))),
    ("`u` must be a tensor [B, L, 1]", lambda: DeepSSM(lambda h: LSSL(h, 4), 1, 3, 1, 2)(torch.ones(5, 1))),
]


@pytest.mark.parametrize("message, call", BAD_CALLS, ids=[m for m, _ in BAD_CALLS])
def test_a_bad_call_raises_a_named_error(message: str, call) -> None:
    with pytest.raises(InvalidInputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        call(LSSL(3, 4))


@pytest.mark.parametrize("message, build", BAD_LAYERS, ids=[m for m, _ in BAD_LAYERS])
def test_a_bad_layer_or_model_raises_a_named_error(message: str, build) -> None:
    with pytest.raises(InvalidInputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        build()

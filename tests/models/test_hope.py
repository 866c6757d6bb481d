"""HOPE: FIR identity at dt = 1, realization == kernel, sqrt(n)-Lipschitz, causality; S4D kernel == recurrence."""

from __future__ import annotations

import math

import pytest
import torch

import neuralct as nct
from neuralct.errors import InvalidInputError
from neuralct.models.ssm.deep import DeepSSM
from neuralct.models.ssm.hope import HOPE, fir_realization, hope_transfer, mobius
from neuralct.models.ssm.s4d import S4D, s4d_init
from neuralct.paths.interpolation import LinearPath
from neuralct.solvers.linear import GBT
from neuralct.solvers.linear.discretize import gbt

DTYPE = torch.float64
STEPS = [0.01, 0.1, 0.5, 1.0, 3.0]


def _hope(mode: str = "causal", n: int = 8, dt: float | None = None) -> HOPE:
    layer = HOPE(3, n, mode=mode, dt_min=0.2, dt_max=0.7).to(DTYPE)
    if dt is not None:
        layer.log_dt.data.fill_(math.log(dt))
    return layer


def _trapezoid_transfer(markov: torch.Tensor, dt: float, points: int) -> torch.Tensor:
    """$C (zI - \\bar A)^{-1} \\bar B + \\bar D$ of the realization under the bilinear rule, at the FFT points."""
    a, b, c, d = (x.to(torch.complex128) for x in fir_realization(markov))
    eye = torch.eye(a.shape[0], dtype=a.dtype)
    left = eye - dt / 2 * a
    a_bar = torch.linalg.solve(left, eye + dt / 2 * a)
    b_bar = dt * torch.linalg.solve(left, torch.linalg.solve(left, b))  # input-averaged (standard) form
    d_bar = d + dt / 2 * c @ torch.linalg.solve(left, b)
    z = torch.exp(2j * math.pi * torch.arange(points, dtype=DTYPE) / points)
    resolvent = torch.linalg.solve(z[:, None, None] * eye - a_bar, b_bar.expand(points, -1))  # [P, n]
    return c @ resolvent.T + d_bar[:, None]


def _solve_realization(layer: HOPE, u: torch.Tensor) -> torch.Tensor:
    """The layer's LinearTerm under GBT(1/2) on a LinearPath, from zero state at t = -1 (input 0 there)."""
    times = torch.arange(-1.0, u.shape[1], dtype=DTYPE)
    path = LinearPath(torch.cat([torch.zeros_like(u[:, :1]), u], dim=1), times)
    term = layer.linear_term(path)
    y0 = torch.zeros(u.shape[0], u.shape[2], layer.markov.shape[1], dtype=DTYPE)
    sol = nct.solve(term, y0, times, solver=GBT(0.5), controller=nct.ConstantStep(1.0))
    return term.output(sol.ys[:, 1:], u)[..., 0]


@pytest.mark.parametrize("complex_markov", [False, True], ids=["real", "complex"])
def test_kernel_at_unit_step_is_the_zero_padded_markov_sequence(complex_markov: bool) -> None:
    markov = torch.randn(4, 16, dtype=torch.complex128 if complex_markov else DTYPE)
    impulse = torch.fft.ifft(hope_transfer(markov, torch.ones(4, dtype=DTYPE), 40), dim=-1)
    expected = torch.zeros(4, 40, dtype=torch.complex128)
    expected[:, 1:17] = markov  # lag j holds h_j; lag 0 (the feed-through) is 0
    assert (impulse - expected).abs().max() < 1e-12


def test_layer_kernel_at_unit_step_is_flat_up_to_n_and_zero_after() -> None:
    layer = _hope(n=8, dt=1.0)
    expected = torch.zeros(3, 20, dtype=DTYPE)
    expected[:, 1:9] = layer.markov.detach()
    assert (layer.kernel(20) - expected).abs().max() < 1e-12


def test_mobius_map_keeps_the_unit_circle_and_is_the_identity_at_unit_step() -> None:
    z = torch.exp(2j * math.pi * torch.rand(50, dtype=DTYPE))
    for dt in STEPS:
        assert ((mobius(z, torch.tensor(dt, dtype=DTYPE)).abs() - 1).abs().max()) < 1e-13
    assert (mobius(z, torch.tensor(1.0, dtype=DTYPE)) - z).abs().max() < 1e-15


def test_realization_has_one_pole_and_discretizes_back_to_the_shift_register_at_unit_step() -> None:
    a, b, _, _ = fir_realization(torch.randn(2, 6, dtype=DTYPE))
    a_bar, _ = gbt(a, b, torch.tensor(1.0, dtype=DTYPE), 0.5)
    assert (a_bar - torch.diag(torch.ones(5, dtype=DTYPE), -1)).abs().max() < 1e-13
    shifted = a + 2 * torch.eye(6, dtype=DTYPE)  # one Jordan block at -2: (A + 2I)^6 = 0, (A + 2I)^5 != 0
    assert torch.linalg.matrix_power(shifted, 6).abs().max() < 1e-9 < torch.linalg.matrix_power(shifted, 5).abs().max()


@pytest.mark.parametrize("dt", STEPS)
def test_realization_transfer_function_equals_the_kernel_spectrum(dt: float) -> None:
    markov = torch.randn(3, 12, dtype=DTYPE)
    spectrum = hope_transfer(markov, torch.full((3,), dt, dtype=DTYPE), 64)
    assert (_trapezoid_transfer(markov, dt, 64) - spectrum).abs().max() < 1e-11


def test_solving_the_linear_term_with_the_bilinear_rule_equals_the_convolution() -> None:
    layer = _hope()
    u = torch.randn(2, 100, 3, dtype=DTYPE)
    assert (_solve_realization(layer, u) - layer(u)).abs().max() < 1e-10


def test_short_grid_aliases_a_slowly_decaying_response_into_the_kernel() -> None:
    # The kernel is the impulse response folded with period 2L: exact only once it has decayed.
    layer = _hope(dt=0.02)
    u = torch.randn(1, 30, 3, dtype=DTYPE)
    assert (_solve_realization(layer, u) - layer(u)).abs().max() > 1e-3


def test_transfer_function_is_sqrt_n_lipschitz_in_the_markov_parameters() -> None:
    n, draws = 16, 200
    for dt in STEPS:
        first = torch.randn(draws, n, dtype=torch.complex128) * torch.rand(draws, 1, dtype=DTYPE) * 10
        second = torch.randn(draws, n, dtype=torch.complex128)
        steps = torch.full((draws,), dt, dtype=DTYPE)
        gap = (hope_transfer(first, steps, 128) - hope_transfer(second, steps, 128)).abs().amax(dim=-1)
        bound = math.sqrt(n) * (first - second).norm(dim=-1)
        assert bool((gap <= bound * (1 + 1e-12)).all())


def test_lipschitz_bound_is_attained_by_a_difference_aligned_with_one_frequency() -> None:
    n, dt = 16, torch.tensor([0.3], dtype=DTYPE)
    z = torch.exp(2j * math.pi * torch.tensor(5 / 64, dtype=DTYPE))
    difference = mobius(z, dt) ** torch.arange(1, n + 1)  # conj(w^-j): all terms add in phase at l = 5
    gap = hope_transfer(difference[None], dt, 64).abs().amax()
    assert gap == pytest.approx(math.sqrt(n) * difference.norm().item(), rel=1e-12)


def test_causal_output_does_not_change_when_later_inputs_change() -> None:
    layer, u = _hope(dt=0.05), torch.randn(2, 64, 3, dtype=DTYPE)
    changed = u.clone()
    changed[:, 40:] = torch.randn(2, 24, 3, dtype=DTYPE)
    assert (layer(u)[:, :40] - layer(changed)[:, :40]).abs().max() < 1e-13


def test_bidirectional_output_changes_when_later_inputs_change() -> None:
    layer, u = _hope("bidirectional"), torch.randn(2, 64, 3, dtype=DTYPE)
    changed = u.clone()
    changed[:, 40:] = torch.randn(2, 24, 3, dtype=DTYPE)
    assert (layer(u)[:, :40] - layer(changed)[:, :40]).abs().max() > 1e-3


@pytest.mark.parametrize("init", ["lin", "inv"])
def test_s4d_convolution_equals_its_recurrent_unroll(init: str) -> None:
    layer = S4D(3, 16, init=init).to(DTYPE)
    u = torch.randn(2, 80, 3, dtype=DTYPE)
    assert (layer(u) - layer.unroll(u)).abs().max() < 1e-12


def test_s4d_memory_decays_where_hope_memory_stays_flat() -> None:
    s4d = S4D(1, 16, dt_min=0.1, dt_max=0.1).to(DTYPE)
    envelope = s4d.kernel(400).abs()
    assert envelope[0, 300:].max() < 1e-3 * envelope[0, :20].max()
    hope = HOPE(1, 64).to(DTYPE)
    hope.log_dt.data.zero_()
    hope.markov.data.fill_(1.0)
    assert torch.equal(hope.kernel(400)[0, 1:65].round(decimals=10), torch.ones(64, dtype=DTYPE))


def test_s4d_init_puts_every_mode_in_the_left_half_plane() -> None:
    for init in ("lin", "inv"):
        a = s4d_init(8, init, dtype=DTYPE)
        assert bool((a.real == -0.5).all())
        assert a.imag[1] == pytest.approx(math.pi if init == "lin" else 16 / math.pi * (16 / 3 - 1))


@pytest.mark.parametrize(
    "build",
    [lambda: _hope(), lambda: _hope("bidirectional"), lambda: S4D(3, 8).to(DTYPE)],
    ids=["causal", "bidir", "s4d"],
)
def test_gradients_reach_every_parameter(build) -> None:
    layer = build()
    y = layer(torch.randn(2, 32, 3, dtype=DTYPE))
    assert y.shape == (2, 32, 3)
    y.square().sum().backward()
    for name, parameter in layer.named_parameters():
        assert parameter.grad is not None and bool(parameter.grad.abs().sum() > 0), name


def test_layers_plug_into_the_deep_ssm_stack() -> None:
    for factory in (lambda h: HOPE(h, 8), lambda h: S4D(h, 8)):
        model = DeepSSM(factory, d_input=1, d_model=4, n_layers=2, d_output=10, pool=slice(16, None))
        assert model(torch.randn(5, 32, 1)).shape == (5, 10)


def test_fixed_steps_are_buffers_not_parameters() -> None:
    assert "log_dt" not in dict(HOPE(2, 4, learn_dt=False).named_parameters())
    assert "log_dt" not in dict(S4D(2, 4, learn_dt=False).named_parameters())


BAD_INPUTS = [
    (lambda: HOPE(0), "`d_model` must be a positive int; got 0"),
    (lambda: HOPE(2, n=1.5), "`n` must be a positive int; got 1.5"),
    (lambda: HOPE(2, mode="circular"), "`mode` must be one of"),
    (lambda: HOPE(2, dt_min=0.5, dt_max=0.1), "0 < dt_min <= dt_max; got 0.5, 0.1"),
    (
        lambda: HOPE(2)(torch.randn(1, 8, 3)),
        r"`u` must be a tensor \[B, L, 2\] with L >= 1; got Tensor of shape \(1, 8, 3\)",
    ),
    (lambda: HOPE(2, mode="bidirectional")(torch.randn(1, 7, 2)), "even length L in bidirectional mode; got L = 7"),
    (lambda: HOPE(2, mode="bidirectional").kernel(8), "`mode` must be 'causal' for the kernel; got 'bidirectional'"),
    (
        lambda: hope_transfer(torch.randn(3), torch.ones(3), 4),
        r"`markov` must be a tensor \[C, n\]; got Tensor of shape \(3,\)",
    ),
    (lambda: hope_transfer(torch.randn(2, 3), -torch.ones(2), 4), r"`dt` must be a tensor \[2\] of steps > 0"),
    (lambda: hope_transfer(torch.randn(2, 3), torch.ones(2), 0), "`points` must be a positive int; got 0"),
    (lambda: fir_realization(torch.randn(2, 3, dtype=torch.complex64)), "`markov` must be a real tensor"),
    (lambda: S4D(2, 7), "`d_state` must be an even int >= 2; got 7"),
    (lambda: S4D(2)(torch.randn(1, 8)), r"`u` must be a tensor \[B, L, 2\]"),
    (lambda: s4d_init(4, "legs"), "`init` must be one of"),
]


@pytest.mark.parametrize("call, message", BAD_INPUTS, ids=[m[:40] for _, m in BAD_INPUTS])
def test_bad_input_raises_a_named_error(call, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        call()

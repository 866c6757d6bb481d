"""The diagonal linear recurrence: parallel scan == loop == SciPy's filter == closed forms == FFT convolution."""

from __future__ import annotations

import pytest
import scipy.signal
import torch

from neuralct.errors import InvalidInputError
from neuralct.models.ssm.kernels import METHODS, diagonal_convolution, linear_recurrence
from neuralct.models.ssm.s4d import S4D

# The tolerances: 1e-5 in single precision, 1e-10 in double.
TOLERANCE = {torch.float32: 1e-5, torch.complex64: 1e-5, torch.float64: 1e-10, torch.complex128: 1e-10}


def _transitions(shape: tuple[int, ...], dtype: torch.dtype, generator: torch.Generator) -> torch.Tensor:
    """Stable transitions, |a| in [0.5, 1): a rotation times a decay for complex dtypes, signed for real ones."""
    real = torch.empty(0, dtype=dtype).real.dtype
    modulus = 0.5 + 0.5 * torch.rand(shape, dtype=real, generator=generator)
    if dtype.is_complex:
        return torch.polar(modulus, 6.3 * torch.rand(shape, dtype=real, generator=generator))
    return modulus * torch.randn(shape, dtype=real, generator=generator).sign()


def _inputs(shape: tuple[int, ...], dtype: torch.dtype, generator: torch.Generator) -> torch.Tensor:
    return torch.randn(shape, dtype=dtype, generator=generator)


@pytest.mark.parametrize("dtype", list(TOLERANCE))
@pytest.mark.parametrize("length", [1, 37, 256])
def test_scan_equals_the_sequential_loop_in_values_and_gradients(dtype, length):
    generator = torch.Generator().manual_seed(length)
    a = _transitions((3, length, 4), dtype, generator).requires_grad_()
    b = _inputs((3, length, 4), dtype, generator).requires_grad_()
    h0 = _inputs((3, 4), dtype, generator).requires_grad_()
    weights = _inputs((3, length, 4), dtype, generator)
    results = []
    for method in ("scan", "sequential"):
        h = linear_recurrence(a, b, h0, method=method)
        results.append((h, *torch.autograd.grad((h * weights).real.sum(), (a, b, h0))))
    tolerance = TOLERANCE[dtype]
    for scanned, looped in zip(*results):
        torch.testing.assert_close(scanned, looped, atol=tolerance, rtol=tolerance)


def test_long_memory_float32_scan_is_as_accurate_as_the_loop_against_float64():
    # |a| near 1 (memory of ~200 steps), L = 2048: states grow to ~30 and single-precision rounding
    # adds up in both methods (1.1e-6 for the loop, 3.8e-7 for the scan, relative to the largest state).
    generator = torch.Generator().manual_seed(5)
    a = torch.polar(
        1 - 0.01 * torch.rand(2, 2048, 8, generator=generator), 0.1 * torch.randn(2, 2048, 8, generator=generator)
    )
    b = torch.randn(2, 2048, 8, dtype=torch.complex64, generator=generator)
    exact = linear_recurrence(a.to(torch.complex128), b.to(torch.complex128))
    scale = exact.abs().max()
    errors = {method: (linear_recurrence(a, b, method=method) - exact).abs().max() / scale for method in METHODS}
    assert scale > 10 and errors["scan"] < 2e-6 and errors["sequential"] < 2e-6
    assert errors["scan"] <= 1.5 * errors["sequential"]


def test_scan_matches_scipy_lfilter_with_broadcast_transitions_and_initial_state():
    # lfilter([1], [1, -a], b, zi=[a h0]) runs h_k = a h_{k-1} + b_k from h_{-1} = h0 along a whole sequence.
    generator = torch.Generator().manual_seed(0)
    a = _transitions((1, 1, 3), torch.complex128, generator)  # one transition per mode, every sample and step
    b = _inputs((4, 301, 3), torch.float64, generator)  # real inputs: promoted to complex
    h0 = _inputs((3,), torch.complex128, generator)  # one initial state for every sample
    h = linear_recurrence(a, b, h0)
    assert h.shape == (4, 301, 3) and h.dtype == torch.complex128
    for mode in range(3):
        coefficient, start = a[0, 0, mode].item(), h0[mode].item()
        initial = [[coefficient * start]] * 4  # lfilter's state before step 0, one row per sample
        expected, _ = scipy.signal.lfilter([1.0], [1.0, -coefficient], b[..., mode].numpy(), zi=initial)
        torch.testing.assert_close(h[..., mode], torch.from_numpy(expected), atol=1e-12, rtol=0)


def test_constant_transition_gives_the_geometric_sum_even_when_its_powers_underflow():
    # h_k = a^(k+1) h0 + b (1 - a^(k+1)) / (1 - a). With |a| = 0.5, a^k underflows to 0 near k = 1075:
    # a scan that divided by the cumulative product of a would return inf or NaN there.
    length = 2000
    a = torch.tensor([0.5, -0.5, 0.9j, 0.0], dtype=torch.complex128)
    b, h0 = torch.tensor([1.0, 2.0, 1j, 3.0], dtype=torch.complex128), torch.tensor(4.0 + 1j, dtype=torch.complex128)
    h = linear_recurrence(a.expand(length, 4), b.expand(length, 4), h0.expand(4))
    powers = a ** torch.arange(1, length + 1, dtype=torch.float64)[:, None]
    torch.testing.assert_close(h, powers * h0 + b * (1 - powers) / (1 - a), atol=1e-12, rtol=1e-12)
    assert torch.isfinite(h).all()


def test_scan_passes_gradcheck_and_gradgradcheck_in_float64():
    generator = torch.Generator().manual_seed(1)
    a = _transitions((2, 11, 2), torch.complex128, generator).requires_grad_()
    b = _inputs((2, 11, 2), torch.complex128, generator).requires_grad_()
    h0 = _inputs((2, 2), torch.complex128, generator).requires_grad_()
    assert torch.autograd.gradcheck(lambda *x: linear_recurrence(*x, method="scan"), (a, b, h0))
    assert torch.autograd.gradgradcheck(lambda *x: linear_recurrence(*x, method="scan"), (a[:1, :5], b[:1, :5]))
    real = (_transitions((9, 3), torch.float64, generator).requires_grad_(), _inputs((9, 3), torch.float64, generator))
    assert torch.autograd.gradcheck(linear_recurrence, (real[0], real[1].requires_grad_()))


def test_padding_with_identity_steps_holds_each_samples_last_state():
    generator = torch.Generator().manual_seed(2)
    a = _transitions((2, 20, 3), torch.complex128, generator)
    b = _inputs((2, 20, 3), torch.complex128, generator)
    ends = [13, 20]  # sample 0 has 13 observations, sample 1 all 20
    a[0, 13:], b[0, 13:] = 1, 0
    h = linear_recurrence(a, b)
    short = linear_recurrence(a[:1, :13], b[:1, :13])
    torch.testing.assert_close(h[0, :13], short[0], atol=1e-12, rtol=0)
    for sample, end in enumerate(ends):
        torch.testing.assert_close(h[sample, end - 1 :], h[sample, end - 1].expand(20 - end + 1, 3), atol=1e-12, rtol=0)


@pytest.mark.parametrize("conjugate_pairs", [False, True])
def test_fft_convolution_agrees_with_the_recurrence_on_a_uniform_grid(conjugate_pairs):
    generator = torch.Generator().manual_seed(3)
    a = _transitions((5, 8), torch.complex128, generator)  # [H, N] modes, the same at every step
    c = _inputs((5, 8), torch.complex128, generator)
    u = _inputs((2, 5, 300), torch.float64, generator)  # [B, H, L]
    y = diagonal_convolution(u, a.log(), c, conjugate_pairs=conjugate_pairs)
    h = linear_recurrence(a[:, None, :], u[..., None].to(torch.complex128))  # [B, H, L, N]
    readout = torch.einsum("hn,bhln->bhl", c, h)
    torch.testing.assert_close(y, 2 * readout.real if conjugate_pairs else readout, atol=1e-10, rtol=1e-10)
    assert y.dtype == (torch.float64 if conjugate_pairs else torch.complex128)


def test_fft_convolution_with_conjugate_pairs_reproduces_the_s4d_layer():
    torch.manual_seed(4)
    layer = S4D(3, 8).double()
    u = torch.randn(2, 100, 3, dtype=torch.float64)
    a_bar, b_bar, c = layer.discretize()
    y = diagonal_convolution(u.transpose(1, 2), a_bar.log(), c * b_bar, conjugate_pairs=True).transpose(1, 2)
    torch.testing.assert_close(y + layer.d * u, layer.unroll(u), atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: linear_recurrence(torch.ones(3, 2), torch.ones(3, 2), method="loop"), "`method` must be one of"),
        (lambda: linear_recurrence([1.0], torch.ones(3, 2)), r"`a` must be a tensor \[..., L, N\]; got \[1.0\]"),
        (
            lambda: linear_recurrence(torch.ones(3, 2), torch.ones(2)),
            r"`b` must be a tensor \[..., L, N\]; got Tensor of shape \(2,\)",
        ),
        (lambda: linear_recurrence(torch.ones(3, 2), torch.ones(3, 2), 1.0), "`h0` must be a tensor"),
        (
            lambda: linear_recurrence(torch.ones(3, 2), torch.ones(4, 2)),
            r"must broadcast.*got a \(3, 2\), b \(4, 2\)",
        ),
        (lambda: linear_recurrence(torch.ones(3, 2), torch.ones(3, 2), torch.ones(5, 2)), r"h0 \(5, 2\)"),
        (lambda: linear_recurrence(torch.ones(0, 2), torch.ones(0, 2)), "L >= 1 steps"),
    ],
)
def test_bad_recurrence_inputs_raise_a_named_error(call, message):
    with pytest.raises(InvalidInputError, match=message):
        call()

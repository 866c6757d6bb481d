"""Lyapunov spectra by the QR method against closed forms and published values."""

from __future__ import annotations

import math

import pytest
import torch

import neuralct as nct
from neuralct.errors import InvalidInputError
from neuralct.stability.lyapunov import flow_map, lyapunov_spectrum, step_jacobian

F64 = torch.float64


def _generator() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def henon(z: torch.Tensor, t: int) -> torch.Tensor:
    return torch.stack([1 - 1.4 * z[:, 0] ** 2 + z[:, 1], 0.3 * z[:, 0]], dim=-1)


def lorenz(t, y, args):
    x, v, w = y.unbind(-1)
    return torch.stack([10 * (v - x), x * (28 - w) - v, x * v - 8 / 3 * w], dim=-1)


def test_a_linear_map_has_the_log_moduli_of_its_eigenvalues() -> None:
    g = _generator()
    basis = torch.randn(4, 4, generator=g, dtype=F64)
    rotation = torch.tensor([[0.6, -0.8], [0.8, 0.6]], dtype=F64) * 1.1  # eigenvalues 1.1 e^{+-i 0.93}
    blocks = torch.block_diag(rotation, torch.diag(torch.tensor([0.5, -0.3], dtype=F64)))
    matrix = basis @ blocks @ torch.linalg.inv(basis)
    spectrum = lyapunov_spectrum(
        lambda z, t: z @ matrix.T, torch.randn(3, 4, generator=g, dtype=F64), steps=3000, burn_in=200, generator=g
    )
    expected = torch.log(torch.tensor([1.1, 1.1, 0.5, 0.3], dtype=F64))
    torch.testing.assert_close(spectrum.mean(), expected, atol=1e-3, rtol=0)


def test_a_linear_ode_has_the_real_parts_of_its_eigenvalues() -> None:
    g = _generator()
    matrix = torch.tensor([[-0.5, 2.0, 0.0], [-2.0, -0.5, 0.0], [0.3, 0.0, -1.5]], dtype=F64)
    step = flow_map(nct.ODETerm(lambda t, y, args: y @ matrix.T), nct.RK4(), 0.01)
    spectrum = lyapunov_spectrum(step, torch.randn(2, 3, generator=g, dtype=F64), steps=4000, burn_in=400, dt=0.01)
    expected = torch.linalg.eigvals(matrix).real.sort(descending=True).values
    torch.testing.assert_close(spectrum.mean(), expected, atol=1e-3, rtol=0)


def test_the_henon_map_has_its_published_exponents_summing_to_log_b() -> None:
    g = _generator()
    start = 0.1 + 0.01 * torch.rand(16, 2, generator=g, dtype=F64)
    spectrum = lyapunov_spectrum(henon, start, steps=5000, burn_in=500, generator=g, record_every=50)
    assert spectrum.mean()[0] == pytest.approx(0.419, abs=0.01)
    assert spectrum.mean()[1] == pytest.approx(-1.623, abs=0.01)
    # log|det J| = log b at every step, so the sum is exact whatever the trajectory
    assert float(spectrum.exponents.sum(dim=1).sub(math.log(0.3)).abs().max()) < 1e-3
    assert spectrum.trace.shape == (100, 16, 2) and torch.equal(spectrum.trace[-1], spectrum.exponents)
    assert spectrum.times[-1] == 5000


def test_lorenz_63_through_the_rk4_step_map_has_its_published_exponents() -> None:
    g = _generator()
    start = torch.tensor([1.0, 1.0, 20.0], dtype=F64) + torch.rand(32, 3, generator=g, dtype=F64)
    step = flow_map(nct.ODETerm(lorenz), nct.RK4(), 0.01)
    spectrum = lyapunov_spectrum(step, start, steps=5000, burn_in=500, dt=0.01, generator=g, record_every=100)
    leading, middle, last = spectrum.mean().tolist()
    assert leading == pytest.approx(0.906, rel=0.05)
    assert abs(middle) < 0.05 * 0.906
    assert last == pytest.approx(-14.57, rel=0.05)
    assert sum((leading, middle, last)) == pytest.approx(-(10 + 1 + 8 / 3), abs=1e-2)
    only_leading = lyapunov_spectrum(step, start, steps=5000, burn_in=500, dt=0.01, k=1, generator=_generator())
    assert only_leading.exponents.shape == (32, 1)
    assert float(only_leading.mean()[0]) == pytest.approx(leading, rel=0.05)


def test_step_jacobian_is_the_per_sample_jacobian() -> None:
    g = _generator()
    weight = torch.randn(5, 5, generator=g, dtype=F64)
    step = lambda z, t: torch.tanh(z @ weight.T) + 0.5 * z  # noqa: E731
    z = torch.randn(3, 5, generator=g, dtype=F64)
    moved, jacobian = step_jacobian(step, z)
    for b in range(3):
        expected = torch.autograd.functional.jacobian(lambda row: step(row[None], 0)[0], z[b])
        torch.testing.assert_close(jacobian[b], expected, atol=1e-12, rtol=0)
    torch.testing.assert_close(moved, step(z, 0))


def test_bad_input_is_named() -> None:
    z = torch.zeros(2, 2, dtype=F64)
    with pytest.raises(InvalidInputError, match="`z0` must be a floating tensor"):
        lyapunov_spectrum(henon, torch.zeros(2), steps=10)
    with pytest.raises(InvalidInputError, match="`k` must be an int in"):
        lyapunov_spectrum(henon, z, steps=10, k=3)
    with pytest.raises(InvalidInputError, match="`steps`"):
        lyapunov_spectrum(henon, z, steps=0)
    with pytest.raises(InvalidInputError, match="`dt`"):
        lyapunov_spectrum(henon, z, steps=10, dt=-1.0)
    with pytest.raises(InvalidInputError, match="shaped like the state"):
        lyapunov_spectrum(lambda z, t: z[:, :1], z, steps=10)
    with pytest.raises(InvalidInputError, match="`z0` must be finite"):
        lyapunov_spectrum(henon, torch.full((1, 2), float("nan"), dtype=F64), steps=10)
    with pytest.raises(nct.IncompatibleTermError):
        flow_map(nct.ODETerm(lorenz), nct.EulerMaruyama(), 0.01)


def test_the_trace_plot_draws_each_exponent(tmp_path) -> None:
    from neuralct.stability.plots import plot_lyapunov_trace

    start = 0.1 + 0.01 * torch.rand(4, 2, generator=_generator(), dtype=F64)
    spectrum = lyapunov_spectrum(henon, start, steps=500, burn_in=50, record_every=10, generator=_generator())
    figure = plot_lyapunov_trace(spectrum, tmp_path / "trace.svg")
    assert len(figure.axes[0].get_lines()) == 3  # two exponents and the zero line
    assert (tmp_path / "trace.png").stat().st_size > 10_000 and (tmp_path / "trace.svg").exists()

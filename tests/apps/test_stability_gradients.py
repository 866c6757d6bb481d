"""Jacobian spectra along trajectories and gradients against the horizon."""

from __future__ import annotations

import math

import pytest
import torch

import neuralct as nct
from neuralct.errors import InvalidInputError
from neuralct.stability.gradients import gradient_horizon
from neuralct.stability.jacobian import jacobian_spectra
from neuralct.stability.lyapunov import lyapunov_spectrum

F64 = torch.float64


def henon(z: torch.Tensor, t: int) -> torch.Tensor:
    return torch.stack([1 - 1.4 * z[:, 0] ** 2 + z[:, 1], 0.3 * z[:, 0]], dim=-1)


def _start(batch: int) -> torch.Tensor:
    return 0.1 + 0.01 * torch.rand(batch, 2, generator=torch.Generator().manual_seed(0), dtype=F64)


def test_a_linear_field_has_its_matrix_spectrum_at_every_point() -> None:
    matrix = torch.tensor([[-1.0, 5.0, 0.0], [-5.0, -1.0, 0.0], [0.0, 2.0, -1000.0]], dtype=F64)
    term = nct.ODETerm(lambda t, y, args: y @ matrix.T)
    times = torch.linspace(0, 1, 4, dtype=F64).expand(2, 4)
    states = torch.randn(2, 4, 3, dtype=F64)
    spectra = jacobian_spectra(term, times, states)
    assert spectra.jacobians.shape == (2, 4, 3, 3)
    torch.testing.assert_close(spectra.jacobians, matrix.expand(2, 4, 3, 3))
    expected = torch.linalg.eigvals(matrix)
    expected = expected[expected.real.argsort(descending=True)]
    torch.testing.assert_close(spectra.eigenvalues[1, 2], expected)
    symmetric = torch.linalg.eigvalsh((matrix + matrix.T) / 2).flip(0)
    torch.testing.assert_close(spectra.symmetric[0, 0], symmetric)
    torch.testing.assert_close(spectra.stiffness, torch.full((2, 4), 1000.0, dtype=F64))
    assert float(spectra.spectral_abscissa()[0]) == pytest.approx(-1.0)


def test_the_van_der_pol_jacobian_along_a_solve_is_the_analytic_one() -> None:
    mu = 3.0

    def field(t, y, args):
        x, v = y.unbind(-1)
        return torch.stack([v, mu * (1 - x**2) * v - x], dim=-1)

    solution = nct.solve(
        nct.ODETerm(field), torch.tensor([[2.0, 0.0], [0.5, 0.1]], dtype=F64), torch.linspace(0, 5, 11, dtype=F64)
    )
    spectra = jacobian_spectra(nct.ODETerm(field), solution.ts, solution.ys)
    x, v = solution.ys.unbind(-1)
    analytic = torch.stack(
        [
            torch.stack([torch.zeros_like(x), torch.ones_like(x)], -1),
            torch.stack([-2 * mu * x * v - 1, mu * (1 - x**2)], -1),
        ],
        dim=-2,
    )
    torch.testing.assert_close(spectra.jacobians, analytic, atol=1e-12, rtol=0)
    # the trace of J is the sum of the eigenvalues at every point
    torch.testing.assert_close(spectra.eigenvalues.real.sum(-1), mu * (1 - x**2), atol=1e-10, rtol=0)


def test_gradients_of_the_chaotic_henon_map_grow_at_its_leading_lyapunov_exponent() -> None:
    leading = float(lyapunov_spectrum(henon, _start(16), steps=5000, burn_in=500, k=1).mean()[0])
    horizon = gradient_horizon(henon, _start(64), 60, burn_in=500)
    assert horizon.log_norms.shape == (64, 60)
    assert horizon.mean_rate() == pytest.approx(leading, rel=0.15)
    assert horizon.diagnosis().startswith("exploding")
    through_loss = gradient_horizon(henon, _start(64), 60, burn_in=500, loss=lambda z: (z**2).sum(dim=1))
    assert through_loss.mean_rate() == pytest.approx(leading, rel=0.15)


def test_a_contracting_linear_map_has_vanishing_gradients_at_its_spectral_radius() -> None:
    matrix = torch.tensor([[0.5, 0.3], [0.0, 0.8]], dtype=F64)
    horizon = gradient_horizon(lambda z, t: z @ matrix.T, torch.randn(3, 2, dtype=F64), 200)
    assert horizon.mean_rate() == pytest.approx(math.log(0.8), rel=0.02)
    # the norms are exact: ||A^l||_2 for every lag
    powers = torch.stack([torch.linalg.matrix_norm(torch.linalg.matrix_power(matrix, n), ord=2) for n in (1, 2, 50)])
    torch.testing.assert_close(horizon.log_norms[0, [0, 1, 49]], powers.log())
    assert horizon.diagnosis().startswith("vanishing")


def test_bad_input_is_named() -> None:
    with pytest.raises(InvalidInputError, match="`horizon` must be an int >= 2"):
        gradient_horizon(henon, _start(2), 1)
    with pytest.raises(InvalidInputError, match="`loss` must return one value per sample"):
        gradient_horizon(henon, _start(2), 5, loss=lambda z: z)
    with pytest.raises(InvalidInputError, match="`states` must be \\[B, K, N\\]"):
        jacobian_spectra(nct.ODETerm(lambda t, y, a: y), torch.zeros(2, 3), torch.zeros(2, 4, 1))
    with pytest.raises(InvalidInputError, match="`states` must be finite"):
        jacobian_spectra(nct.ODETerm(lambda t, y, a: y), torch.zeros(1, 1), torch.full((1, 1, 2), float("nan")))


def test_a_models_jacobian_spectra_along_its_own_solve(float64) -> None:
    from neuralct import registry
    from neuralct.data.datasets import load
    from neuralct.stability.jacobian import model_jacobian_spectra

    batch = load("spirals", "train", size=3, length=8)
    model = registry.model("ltc", channels=2, hidden=6, outputs=2)
    spectra = model_jacobian_spectra(model, batch)
    options = model.default_solve_options().solve_kwargs()
    solution = nct.solve(model.term(batch), model.initial_state(batch), model.save_times(batch), **options)
    k = 3
    term = model.term(batch)

    def field_of_sample_zero(y):
        states = solution.ys[:, k].clone()
        states[0] = y
        return term.vector_field(solution.ts[:, k], states, None)[0]

    expected = torch.autograd.functional.jacobian(field_of_sample_zero, solution.ys[0, k])
    torch.testing.assert_close(spectra.jacobians[0, k], expected, atol=1e-10, rtol=0)
    assert spectra.eigenvalues.shape == (3, solution.ts.shape[1], 6)
    with pytest.raises(InvalidInputError, match="AbstractContinuousModel"):
        model_jacobian_spectra(registry.model("ode_rnn", channels=2, hidden=4, outputs=2), batch)


def test_the_gradient_memory_and_jacobian_plots_are_drawn(tmp_path, float64) -> None:
    from neuralct import registry
    from neuralct.data.datasets import load
    from neuralct.models.ssm.lssl import LSSL
    from neuralct.stability.jacobian import model_jacobian_spectra
    from neuralct.stability.memory import memory_profile
    from neuralct.stability.plots import plot_gradient_horizon, plot_jacobian_spectra, plot_memory_profiles

    horizon = gradient_horizon(henon, _start(8), 30, burn_in=100)
    figure = plot_gradient_horizon(horizon, tmp_path / "gradients.png", lyapunov=0.419)
    assert len(figure.axes[0].get_lines()) == 8 + 3
    profiles = {a: memory_profile(LSSL(2, 16, a=a, dt_min=0.01, dt_max=0.01), 300) for a in ("legt", "legs")}
    plot_memory_profiles(profiles, tmp_path / "memory.svg")
    batch = load("spirals", "train", size=3, length=8)
    spectra = model_jacobian_spectra(registry.model("ltc", channels=2, hidden=4, outputs=2), batch)
    plot_jacobian_spectra(spectra, tmp_path / "jacobian.png")
    for name in ("gradients.png", "memory.png", "memory.svg", "jacobian.png"):
        assert (tmp_path / name).stat().st_size > 10_000, name
    with pytest.raises(InvalidInputError, match="`profiles`"):
        plot_memory_profiles({})

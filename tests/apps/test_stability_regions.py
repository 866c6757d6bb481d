"""Linear stability regions of the solvers, measured against values from the literature.

Reference values:
- Euler and every two-stage second-order method ($R = 1 + z + z^2/2$): real interval $[-2, 0]$.
- Three-stage third order ($R = 1 + z + z^2/2 + z^3/6$, Bogacki-Shampine's solution polynomial):
  $-2.5127453266$; classic RK4: $-2.785293563405282$, and $|R(iy)| \\le 1$ up to $y = 2\\sqrt{2}$
  (Hairer & Wanner, "Solving ODEs II", section IV.2, Fig. 2.1; Butcher, "Numerical Methods for
  ODEs", 3rd ed., section 238).
- Dormand-Prince 5(4): about $-3.3$ on the real axis (Hairer, Norsett & Wanner, "Solving ODEs I",
  section II.5 / IV.2 stability figure of DOPRI5; 3.3066 by the same polynomial root).
- A method of order p with s = p stages has $R(z) = \\sum_{k \\le p} z^k / k!$, and an order-p
  method's first p + 1 coefficients are $1/k!$ (Hairer & Wanner II, Theorem IV.2.2).
- Implicit Euler, $R = 1/(1 - z)$: A-stable, the whole left half plane.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import neuralct as nct
from neuralct.errors import InvalidInputError
from neuralct.solvers.rk import ButcherTableau
from neuralct.stability.plots import plot_stability_regions
from neuralct.stability.regions import (
    inside_region,
    largest_stable_step,
    real_interval,
    region_grid,
    scaled_eigenvalues,
    stability_function,
    supported_solvers,
)

RK4_REAL = -2.785293563405282


# --- real stability intervals -------------------------------------------------------------


@pytest.mark.parametrize("name", ["euler", "heun", "midpoint", "ralston"])
def test_first_and_second_order_methods_are_stable_on_minus_two_to_zero(name):
    low, high = real_interval(name)
    assert high == 0.0
    assert low == pytest.approx(-2.0, abs=1e-9)


def test_rk4_real_interval_matches_the_known_value():
    assert real_interval(nct.RK4())[0] == pytest.approx(RK4_REAL, abs=1e-9)


def test_bosh3_real_interval_is_the_three_stage_third_order_one():
    assert real_interval("bosh3")[0] == pytest.approx(-2.5127453266, abs=1e-9)


def test_dopri5_real_interval_is_about_minus_3_3():
    assert real_interval(nct.Dopri5())[0] == pytest.approx(-3.3066, abs=1e-3)


def test_tsit5_real_interval_is_about_minus_3_5():
    low = real_interval("tsit5")[0]
    assert -3.8 < low < -3.2


def test_implicit_euler_is_stable_on_the_whole_negative_axis():
    assert real_interval(nct.ImplicitEuler()) == (-math.inf, 0.0)


def test_real_interval_ends_where_the_modulus_reaches_one():
    for name in ["rk4", "bosh3", "dopri5", "tsit5", "dopri8"]:
        low = real_interval(name)[0]
        fn = stability_function(name)
        assert abs(abs(fn(low)) - 1) < 1e-10
        assert abs(fn(low * 1.001)) > 1
        assert (np.abs(fn(np.linspace(low, 0, 1001))) <= 1 + 1e-10).all()


# --- stability polynomials -----------------------------------------------------------------


@pytest.mark.parametrize("solver, order", [(nct.Euler(), 1), (nct.Heun(), 2), (nct.RK4(), 4)])
def test_s_stage_order_s_methods_have_the_taylor_polynomial_of_exp(solver, order):
    coefficients = stability_function(solver).numerator
    assert len(coefficients) == order + 1
    np.testing.assert_allclose(coefficients, [1 / math.factorial(k) for k in range(order + 1)], rtol=1e-14)


@pytest.mark.parametrize("name, order", [("bosh3", 3), ("dopri5", 5), ("tsit5", 5), ("dopri8", 8)])
def test_order_p_methods_match_exp_to_degree_p(name, order):
    coefficients = stability_function(name).numerator
    np.testing.assert_allclose(coefficients[: order + 1], [1 / math.factorial(k) for k in range(order + 1)], rtol=1e-13)


def test_dopri5_polynomial_has_degree_six_and_differs_from_exp_there():
    coefficients = stability_function("dopri5").numerator
    assert len(coefficients) == 7  # seven stages, but the last (first-same-as-last) has weight zero
    assert coefficients[6] == pytest.approx(1 / 600, rel=1e-12)  # Hairer, Norsett & Wanner I, II.5


def test_a_tableau_and_its_solver_give_the_same_function():
    tableau = ButcherTableau(c=(0.0, 0.5), a=((), (0.5,)), b=(0.0, 1.0))
    z = np.array([-1.0 + 0.5j, 0.3j, -2.5])
    np.testing.assert_array_equal(stability_function(tableau)(z), stability_function(nct.Midpoint())(z))


def test_implicit_euler_function_is_one_over_one_minus_z():
    z = np.array([[-3.0 + 1j, 0.5j], [-100.0, 0.25]])
    np.testing.assert_allclose(stability_function("implicit_euler")(z), 1 / (1 - z), rtol=1e-15)


# --- the formula against the solvers themselves --------------------------------------------


def rotation_field(t, y, args):
    """$y' = \\lambda y$ for complex $\\lambda = a + ib$ as the real system $[[a, -b], [b, a]]$."""
    a, b = args
    return torch.stack([a * y[:, 0] - b * y[:, 1], b * y[:, 0] + a * y[:, 1]], dim=1)


@pytest.mark.parametrize("name", ["euler", "midpoint", "heun", "ralston", "rk4", "bosh3", "dopri5", "tsit5", "dopri8"])
@pytest.mark.parametrize("z", [-1.3 + 0.7j, -0.4 - 2.1j, 0.2 + 0.5j])
def test_one_solver_step_multiplies_by_the_stability_function(name, z):
    assert_one_step_matches(name, z)


def test_one_implicit_euler_step_multiplies_by_the_stability_function():
    assert_one_step_matches("implicit_euler", -7.0 + 3.0j)


def assert_one_step_matches(name: str, z: complex) -> None:
    h = 0.5
    lam = z / h
    y0 = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    sol = nct.solve(
        nct.ODETerm(rotation_field),
        y0,
        torch.tensor([0.0, h], dtype=torch.float64),
        solver=nct.registry.solver(name),
        controller=nct.ConstantStep(h),
        args=(lam.real, lam.imag),
    )
    y1 = sol.ys[0, -1]
    assert int(sol.stats.steps[0]) == 1
    assert complex(y1[0], y1[1]) == pytest.approx(complex(stability_function(name)(z)), abs=1e-12)


def test_rk4_decays_just_below_its_largest_step_and_grows_just_above():
    lam = -10.0
    limit = largest_stable_step("rk4", lam)
    ends = []
    for dt in (0.99 * limit, 1.01 * limit):
        sol = nct.solve(
            nct.ODETerm(rotation_field),
            torch.tensor([[1.0, 0.0]], dtype=torch.float64),
            torch.tensor([0.0, 60 * dt], dtype=torch.float64),
            solver=nct.RK4(),
            controller=nct.ConstantStep(dt),
            args=(lam, 0.0),
        )
        ends.append(float(sol.ys[0, -1].abs().max()))
    assert ends[0] < 1 < ends[1]


# --- step sizes and eigenvalues ------------------------------------------------------------


def test_largest_stable_step_of_euler_and_rk4_on_a_real_eigenvalue():
    assert largest_stable_step(nct.Euler(), [-10.0]) == pytest.approx(0.2, abs=1e-12)
    assert largest_stable_step("rk4", -10.0) == pytest.approx(-RK4_REAL / 10, abs=1e-10)


def test_largest_stable_step_of_euler_on_a_complex_pair_is_minus_two_re_over_modulus_squared():
    # |1 + h(a + ib)| = 1  <=>  h = -2a / (a^2 + b^2)
    assert largest_stable_step("euler", [-1 + 2j, -1 - 2j]) == pytest.approx(0.4, abs=1e-12)


def test_rk4_imaginary_axis_limit_is_two_root_two():
    assert largest_stable_step("rk4", 5j) == pytest.approx(2 * math.sqrt(2) / 5, abs=1e-10)


def test_euler_is_never_stable_on_a_purely_imaginary_eigenvalue():
    assert largest_stable_step("euler", [-1.0, 3j]) == 0.0


def test_implicit_euler_has_no_step_limit():
    assert largest_stable_step(nct.ImplicitEuler(), [-1e6, -1 + 100j, 2j]) == math.inf


def test_the_stiffest_eigenvalue_decides_and_growing_modes_are_ignored():
    eigenvalues = torch.tensor([-0.1 + 0j, -1000.0, 5.0 + 1j, 0.0])
    assert largest_stable_step("rk4", eigenvalues) == pytest.approx(-RK4_REAL / 1000, rel=1e-10)


def test_largest_stable_step_puts_every_eigenvalue_on_or_inside_the_region():
    eigenvalues = np.array([-3.0 + 4j, -3.0 - 4j, -0.5, -8 + 1j, -1 + 7j])
    for name in ["heun", "rk4", "dopri5", "tsit5"]:
        dt = largest_stable_step(name, eigenvalues)
        assert inside_region(name, scaled_eigenvalues(eigenvalues, dt)).all()
        assert not inside_region(name, scaled_eigenvalues(eigenvalues, 1.001 * dt)).all()


def test_scaled_eigenvalues_take_one_step_per_row():
    eigenvalues = torch.tensor([[-1.0 + 1j, -2.0], [-3.0, 4j]])
    scaled = scaled_eigenvalues(eigenvalues, np.array([0.5, 2.0]))
    np.testing.assert_allclose(scaled, [[-0.5 + 0.5j, -1.0], [-6.0, 8j]])
    np.testing.assert_allclose(scaled_eigenvalues([-1.0, 2j], 0.1), [-0.1, 0.2j])


def test_region_grid_is_the_modulus_on_a_meshgrid():
    X, Y, modulus = region_grid("euler", re=(-3, 1), im=(-2, 2), points=5)
    assert X.shape == Y.shape == modulus.shape == (5, 5)
    np.testing.assert_allclose(modulus, np.abs(1 + X + 1j * Y))
    assert modulus[2, 2] == pytest.approx(0.0)  # z = -1: the centre of Euler's disc


def test_supported_solvers_are_the_explicit_rk_methods_and_implicit_euler():
    expected = {"euler", "midpoint", "heun", "ralston", "rk4", "bosh3", "dopri5", "tsit5", "dopri8", "implicit_euler"}
    assert set(supported_solvers()) == expected


# --- bad input -----------------------------------------------------------------------------


def test_an_unknown_solver_name_is_rejected():
    with pytest.raises(InvalidInputError, match="unknown solver 'rk5'"):
        stability_function("rk5")


@pytest.mark.parametrize("solver", ["euler_maruyama", "zoh", "torchdiffeq:dopri5", nct.RK4, 3.0])
def test_a_solver_without_a_stability_function_is_rejected_with_the_supported_list(solver):
    solver = nct.registry.solver(solver) if solver in ("euler_maruyama", "zoh") else solver
    with pytest.raises(InvalidInputError, match="dopri5, tsit5, dopri8, implicit_euler"):
        real_interval(solver)


@pytest.mark.parametrize("dt", [0.0, -0.1, math.nan, [0.1, -1.0]])
def test_a_non_positive_step_is_rejected(dt):
    with pytest.raises(InvalidInputError, match="`dt` must be positive"):
        scaled_eigenvalues([-1.0, -2.0], dt)


def test_non_finite_or_missing_eigenvalues_are_rejected():
    with pytest.raises(InvalidInputError, match="`eigenvalues` must be finite"):
        largest_stable_step("rk4", [-1.0, complex(math.nan, 0)])
    with pytest.raises(InvalidInputError, match="at least one eigenvalue"):
        largest_stable_step("rk4", [])


def test_bad_grid_arguments_are_rejected():
    with pytest.raises(InvalidInputError, match="`points` must be an int >= 2"):
        region_grid("rk4", points=1)
    with pytest.raises(InvalidInputError, match="`re` must be finite with low < high"):
        region_grid("rk4", re=(1.0, -1.0))


# --- the figure ----------------------------------------------------------------------------


def test_plot_writes_a_png_with_three_solvers_and_eigenvalues(tmp_path):
    eigenvalues = np.array([-10.0, -1 + 3j, -1 - 3j, -20 + 1j])
    figure = plot_stability_regions(
        ["euler", nct.RK4(), "dopri5"], eigenvalues=eigenvalues, dt=0.1, path=tmp_path / "regions.svg"
    )
    assert (tmp_path / "regions.png").stat().st_size > 10_000
    assert (tmp_path / "regions.svg").stat().st_size > 10_000
    labels = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    assert labels[:3] == ["Euler: 3/4 inside", "RK4: 4/4 inside", "Dopri5: 4/4 inside"]


def test_plot_rejects_an_unknown_file_type_and_a_step_without_eigenvalues(tmp_path):
    with pytest.raises(InvalidInputError, match="must end in .png or .svg"):
        plot_stability_regions("rk4", path=tmp_path / "regions.pdf")
    with pytest.raises(InvalidInputError, match="`dt`"):
        plot_stability_regions("rk4", dt=0.1)

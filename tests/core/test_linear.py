"""Linear terms, the piecewise-constant (zero-order-hold) path, the ZOH and GBT solvers and HiPPO matrices."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.integrate
import scipy.linalg
import torch
from scipy.special import eval_legendre

import neuralct as nct
from neuralct import registry
from neuralct.models.ssm.hippo import hippo_lagt, hippo_legs, hippo_legt
from neuralct.paths.interpolation import LinearPath
from neuralct.paths.piecewise_constant import PiecewiseConstantPath
from neuralct.solvers.linear import GBT, ZOH, discretize
from neuralct.terms.linear import LinearTerm

F64 = torch.float64


class SmoothInput:
    """u_h(t) = sin(w_h t + h): a smooth input path with H channels."""

    def __init__(self, batch: int, features: int):
        self.channels = features
        self.batch = batch
        self.freq = torch.linspace(1.0, 3.0, features, dtype=F64)

    def evaluate(self, t: torch.Tensor) -> torch.Tensor:
        return torch.sin(t.reshape(-1, 1) * self.freq + torch.arange(self.channels, dtype=F64))

    def numpy(self, t: float) -> np.ndarray:
        return np.sin(t * self.freq.numpy() + np.arange(self.channels))


def _stable_system(features: int, size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    a = torch.randn(features, size, size, generator=generator, dtype=F64) / math.sqrt(size)
    a = a - 1.5 * torch.eye(size, dtype=F64)
    return a, torch.randn(features, size, generator=generator, dtype=F64)


def _irregular_knots(batch: int, length: int, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    steps = 0.05 + 0.4 * torch.rand(batch, length - 1, generator=generator, dtype=F64)
    start = torch.rand(batch, 1, generator=generator, dtype=F64)
    return torch.cat([start, start + steps.cumsum(dim=1)], dim=1)


def _zoh_reference(a, b, x0, times, values) -> np.ndarray:
    """x at every knot by scipy's expm of the augmented matrix, interval by interval."""
    a, b, x, times, values = (v.numpy() for v in (a, b, x0, times, values))
    batch, features, size = x.shape
    out = [x.copy()]
    for k in range(1, times.shape[1]):
        x = x.copy()
        for i in range(batch):
            for h in range(features):
                augmented = np.zeros((size + 1, size + 1))
                augmented[:size, :size], augmented[:size, size] = a[h], b[h]
                exponential = scipy.linalg.expm((times[i, k] - times[i, k - 1]) * augmented)
                x[i, h] = exponential[:size, :size] @ x[i, h] + exponential[:size, size] * values[i, k, h]
        out.append(x)
    return np.stack(out, axis=1)


def _solve_ivp_reference(a, b, x0, times, values) -> np.ndarray:
    """x at every knot by scipy's DOP853 at rtol 1e-12, the input held at u_k on (t_{k-1}, t_k]."""
    a, b, x, times, values = (v.numpy() for v in (a, b, x0, times, values))
    out = [x.copy()]
    for k in range(1, times.shape[1]):
        x = x.copy()
        for i in range(x.shape[0]):
            for h in range(x.shape[1]):
                u = values[i, k, h]
                field = lambda t, y, h=h, u=u: a[h] @ y + b[h] * u
                span = (times[i, k - 1], times[i, k])
                x[i, h] = scipy.integrate.solve_ivp(field, span, x[i, h], "DOP853", rtol=1e-12, atol=1e-14).y[:, -1]
        out.append(x)
    return np.stack(out, axis=1)


def _piecewise_problem(batch=3, features=2, size=4, length=7):
    a, b = _stable_system(features, size)
    times = _irregular_knots(batch, length)
    values = torch.randn(batch, length, features, generator=torch.Generator().manual_seed(2), dtype=F64)
    x0 = torch.randn(batch, features, size, generator=torch.Generator().manual_seed(3), dtype=F64)
    return a, b, x0, times, values


# --- the piecewise-constant path -------------------------------------------------------------


def test_piecewise_constant_path_holds_each_value_over_the_interval_ending_at_it():
    values = torch.tensor([[[1.0], [2.0], [3.0]], [[10.0], [20.0], [30.0]]], dtype=F64)
    times = torch.tensor([[0.0, 1.0, 2.0], [0.0, 0.5, 3.0]], dtype=F64)
    path = PiecewiseConstantPath(values, times)
    queries = torch.tensor([[-1.0, 0.0, 0.2, 1.0, 1.5, 2.0, 7.0], [-1.0, 0.0, 0.2, 0.5, 1.5, 3.0, 7.0]], dtype=F64)
    expected = [[1, 1, 2, 2, 3, 3, 3], [10, 10, 20, 20, 30, 30, 30]]
    assert path.evaluate(queries)[..., 0].tolist() == expected
    assert path.evaluate(queries[:, 3]).tolist() == [[2.0], [20.0]]
    assert torch.equal(path.derivative(queries), torch.zeros(2, 7, 1, dtype=F64))
    assert torch.equal(path.jump_times(), times[:, :-1])


def test_piecewise_constant_path_carries_missing_values_forward():
    values = torch.tensor([[[math.nan], [2.0], [math.nan], [4.0]]], dtype=F64)
    path = PiecewiseConstantPath(values)
    assert path.values[0, :, 0].tolist() == [2.0, 2.0, 2.0, 4.0]


# --- the linear term ---------------------------------------------------------------------------


def test_linear_term_vector_field_is_a_x_plus_b_u_per_feature():
    a, b, x0, times, values = _piecewise_problem()
    path = PiecewiseConstantPath(values, times)
    t = times[:, 2] - 0.01
    u = path.evaluate(t)
    expected = torch.einsum("hnm,bhm->bhn", a, x0) + b * u[..., None]
    assert torch.allclose(LinearTerm(a, b, path).vector_field(t, x0, None), expected, rtol=1e-14)
    shared = LinearTerm(a[0], b[0], path).vector_field(t, x0, None)
    assert torch.allclose(shared, x0 @ a[0].T + b[0] * u[..., None], rtol=1e-14)


def test_linear_term_output_is_c_x_plus_d_u_for_shared_and_per_feature_maps():
    a, b, x0, times, values = _piecewise_problem()
    path = PiecewiseConstantPath(values, times)
    c, d = torch.randn(2, 3, 4, dtype=F64), torch.randn(2, 3, dtype=F64)
    u = values[:, 0]
    per_feature = LinearTerm(a, b, path, c, d).output(x0, u)
    assert per_feature.shape == (3, 2, 3)
    assert torch.allclose(per_feature, torch.einsum("hmn,bhn->bhm", c, x0) + d * u[..., None], rtol=1e-14)
    saved = torch.stack([x0, 2 * x0], dim=1)  # [B, K, H, N]
    shared = LinearTerm(a, b, path, c[0]).output(saved)
    assert torch.allclose(shared, saved @ c[0].T, rtol=1e-14)


def test_trainable_matrices_are_parameters_and_fixed_ones_buffers():
    a, b, _, times, values = _piecewise_problem()
    term = LinearTerm(torch.nn.Parameter(a), b, PiecewiseConstantPath(values, times))
    assert [name for name, _ in term.named_parameters()] == ["a"]
    assert [name for name, _ in term.named_buffers()] == ["b"]


def test_gradients_reach_a_and_b_through_the_zoh_solve():
    a, b, x0, times, values = _piecewise_problem(batch=2, features=1, size=2, length=3)

    def final_state(a, b):
        term = LinearTerm(a, b, PiecewiseConstantPath(values, times))
        return nct.solve(term, x0, times, solver=ZOH(), controller=nct.ConstantStep(0.2)).ys[:, -1]

    assert torch.autograd.gradcheck(final_state, (a.requires_grad_(), b.requires_grad_()))


# --- GBT and its limits ------------------------------------------------------------------------


def _one_step_updates(a, b, x0, u, h):
    """Hand-written forward Euler, and the residuals of backward Euler and the trapezoid rule."""
    field = lambda x: x @ a.T + b * u
    euler = x0 + h * field(x0)
    backward = lambda x1: x1 - x0 - h * field(x1)
    trapezoid = lambda x1: x1 - x0 - h / 2 * (field(x0) + field(x1))
    return euler, backward, trapezoid


@pytest.mark.parametrize("alpha", [0.0, 1.0, 0.5])
def test_gbt_limits_are_euler_backward_euler_and_trapezoid(alpha):
    a, b = _stable_system(1, 4)
    a, b = a[0], b[0]
    x0 = torch.randn(3, 1, 4, dtype=F64)
    h = torch.tensor([0.3, 0.1, 0.7], dtype=F64)
    u = torch.randn(3, 1, dtype=F64)
    a_bar, b_bar = discretize.gbt(a, b, h[:, None], alpha)
    by_discretize = (a_bar @ x0[..., None]).squeeze(-1) + b_bar * u[..., None]
    times = torch.stack([torch.zeros(3, dtype=F64), h], dim=1)
    path = PiecewiseConstantPath(u[:, None].expand(3, 2, 1), times)
    solved = nct.solve(LinearTerm(a, b, path), x0, times, solver=GBT(alpha), controller=nct.ConstantStep(1.0))
    assert solved.stats.steps.tolist() == [1, 1, 1]
    euler, backward, trapezoid = _one_step_updates(a, b, x0, u[..., None], h[:, None, None])
    for x1 in (by_discretize, solved.ys[:, 1]):
        if alpha == 0.0:
            assert torch.allclose(x1, euler, rtol=0, atol=1e-12)
        else:
            residual = backward(x1) if alpha == 1.0 else trapezoid(x1)
            assert residual.abs().max() < 1e-12


def _convergence_slope(solver, steps=(0.2, 0.1, 0.05, 0.025, 0.0125)) -> float:
    a, b = _stable_system(2, 3)
    path = SmoothInput(2, 2)
    x0 = torch.ones(2, 2, 3, dtype=F64)
    t = torch.tensor([0.0, 2.0], dtype=F64)
    term = LinearTerm(a, b, path)
    exact = nct.solve(term, x0, t, solver=nct.Dopri8(), controller=nct.PIDController(rtol=1e-13, atol=1e-14)).ys
    errors = []
    for dt in steps:
        approx = nct.solve(term, x0, t, solver=solver, controller=nct.ConstantStep(dt)).ys
        errors.append(float((approx - exact).abs().max()))
    return float(np.polyfit(np.log(steps), np.log(errors), 1)[0])


@pytest.mark.parametrize("solver, order", [(GBT(0.5), 2), (GBT(0.0), 1), (GBT(1.0), 1), (ZOH(), 2)])
def test_discretizations_converge_at_their_declared_order_on_a_smooth_input(solver, order):
    assert solver.order == order
    assert abs(_convergence_slope(solver) - order) < 0.3


# --- ZOH ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("dt", [10.0, 0.03])
def test_zoh_is_exact_for_piecewise_constant_input_on_per_sample_irregular_knots(dt):
    a, b, x0, times, values = _piecewise_problem()
    term = LinearTerm(a, b, PiecewiseConstantPath(values, times))
    solved = nct.solve(term, x0, times, solver=ZOH(), controller=nct.ConstantStep(dt)).ys.numpy()
    reference = _zoh_reference(a, b, x0, times, values)
    np.testing.assert_allclose(solved, reference, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(solved, _solve_ivp_reference(a, b, x0, times, values), rtol=1e-10, atol=1e-12)


def test_zoh_solve_backward_in_time_returns_to_the_initial_state():
    a, b, x0, times, values = _piecewise_problem()
    term = LinearTerm(a, b, PiecewiseConstantPath(values, times))
    forward = nct.solve(term, x0, times, solver=ZOH(), controller=nct.ConstantStep(10.0))
    backward = nct.solve(term, forward.ys[:, -1], times.flip(1), solver=ZOH(), controller=nct.ConstantStep(10.0))
    assert torch.allclose(backward.ys.flip(1), forward.ys, rtol=1e-10, atol=1e-12)


def test_zoh_result_of_a_sample_does_not_depend_on_its_batch_mates():
    a, b, x0, times, values = _piecewise_problem()
    whole = nct.solve(
        LinearTerm(a, b, PiecewiseConstantPath(values, times)),
        x0,
        times,
        solver=ZOH(),
        controller=nct.ConstantStep(0.1),
    ).ys
    alone = nct.solve(
        LinearTerm(a, b, PiecewiseConstantPath(values[1:2], times[1:2])),
        x0[1:2],
        times[1:2],
        solver=ZOH(),
        controller=nct.ConstantStep(0.1),
    ).ys
    assert torch.equal(whole[1:2], alone)


def test_zoh_dense_output_follows_the_exact_solution_between_knots():
    a, b, x0, times, values = _piecewise_problem(batch=2, length=4)
    term = LinearTerm(a, b, PiecewiseConstantPath(values, times))
    solution = nct.solve(term, x0, times, solver=ZOH(), controller=nct.ConstantStep(0.02), dense=True)
    query = times[:, 1] + 0.37 * (times[:, 2] - times[:, 1])
    exact = nct.solve(term, x0, torch.stack([times[:, 0], query], 1), solver=ZOH(), controller=nct.ConstantStep(1.0))
    assert torch.allclose(solution.evaluate(query), exact.ys[:, 1], rtol=0, atol=1e-7)


@pytest.mark.parametrize(
    "solver, controller",
    [(nct.RK4(), nct.ConstantStep(0.01)), (nct.Tsit5(), nct.PIDController(rtol=1e-11, atol=1e-12))],
)
def test_runge_kutta_landing_on_the_knots_of_a_piecewise_constant_input_equals_zoh(solver, controller):
    a, b, x0, times, values = _piecewise_problem()
    term = LinearTerm(a, b, PiecewiseConstantPath(values, times))
    exact = nct.solve(term, x0, times, solver=ZOH(), controller=nct.ConstantStep(10.0)).ys
    approx = nct.solve(term, x0, times, solver=solver, controller=controller).ys
    assert torch.allclose(approx, exact, rtol=0, atol=1e-8)


def test_zoh_with_small_steps_on_a_linear_input_approaches_tsit5():
    a, b, x0, times, values = _piecewise_problem()
    term = LinearTerm(a, b, LinearPath(values, times))
    tsit5 = nct.solve(term, x0, times, solver=nct.Tsit5(), controller=nct.PIDController(rtol=1e-11, atol=1e-12)).ys
    errors = [
        float((nct.solve(term, x0, times, solver=ZOH(), controller=nct.ConstantStep(dt)).ys - tsit5).abs().max())
        for dt in (0.02, 0.005)
    ]
    assert errors[1] < errors[0] / 8 and errors[1] < 1e-4  # order 2 (midpoint hold)


# --- HiPPO ---------------------------------------------------------------------------------------


def _legs_entry(n: int, k: int) -> float:
    """Gu et al. 2020, appendix D: LegS is dc/dt = (-A c + B u) / t with A_nk = sqrt(2n+1) sqrt(2k+1)
    for n > k, n + 1 for n = k, 0 above; the code returns -A (and B_n = sqrt(2n+1))."""
    if n > k:
        return -math.sqrt(2 * n + 1) * math.sqrt(2 * k + 1)
    return -(n + 1.0) if n == k else 0.0


def _legt_entry(n: int, k: int, window: float) -> float:
    """The docstring's normalised LegT: -sqrt(2n+1) sqrt(2k+1) / theta, times (-1)^(n-k) above the diagonal."""
    sign = 1.0 if n >= k else (-1.0) ** (n - k)
    return -math.sqrt(2 * n + 1) * math.sqrt(2 * k + 1) * sign / window


def _lagt_entry(n: int, k: int) -> float:
    """The docstring's LagT, A = I / 2 - (ones on and below the diagonal): -1 below, -1/2 on, 0 above."""
    return -1.0 if n > k else (-0.5 if n == k else 0.0)


HIPPO_CLOSED_FORMS = {
    "legs": (lambda n: hippo_legs(n, dtype=F64), _legs_entry, lambda n: math.sqrt(2 * n + 1)),
    "legt": (
        lambda n: hippo_legt(n, 0.7, dtype=F64),
        lambda n, k: _legt_entry(n, k, 0.7),
        lambda n: math.sqrt(2 * n + 1) / 0.7,
    ),
    "lagt": (lambda n: hippo_lagt(n, 2.5, dtype=F64), _lagt_entry, lambda n: 2.5),
}


@pytest.mark.parametrize("measure", sorted(HIPPO_CLOSED_FORMS))
def test_hippo_matrices_equal_their_closed_forms_entry_by_entry(measure):
    build, a_entry, b_entry = HIPPO_CLOSED_FORMS[measure]
    size = 7
    a, b = build(size)
    expected_a = torch.tensor([[a_entry(n, k) for k in range(size)] for n in range(size)], dtype=F64)
    expected_b = torch.tensor([b_entry(n) for n in range(size)], dtype=F64)
    torch.testing.assert_close(a, expected_a, rtol=1e-14, atol=0)
    torch.testing.assert_close(b, expected_b, rtol=1e-14, atol=0)


def test_hippo_legt_is_the_papers_matrix_in_the_normalised_reversed_legendre_basis():
    # Gu et al. 2020, LegT (appendix D): dc/dt = -A c + B u with A_nk = (2n + 1) / theta times
    # (-1)^(n-k) for n >= k and 1 for n < k, B_n = (2n + 1) (-1)^n / theta. The code's state is
    # c'_n = (-1)^n c_n / sqrt(2n + 1) (P_n(-x) = (-1)^n P_n(x) turns the basis around), so its
    # matrices are -S D^(-1/2) A D^(1/2) S and S D^(-1/2) B with S = diag((-1)^n), D = diag(2n + 1).
    size, window = 7, 0.7
    paper_a = torch.tensor(
        [[(2 * n + 1) / window * ((-1.0) ** (n - k) if n >= k else 1.0) for k in range(size)] for n in range(size)],
        dtype=F64,
    )
    paper_b = torch.tensor([(2 * n + 1) * (-1.0) ** n / window for n in range(size)], dtype=F64)
    change = torch.diag(torch.tensor([(-1.0) ** n / math.sqrt(2 * n + 1) for n in range(size)], dtype=F64))
    a, b = hippo_legt(size, window, dtype=F64)
    torch.testing.assert_close(a, -change @ paper_a @ torch.linalg.inv(change), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(b, change @ paper_b, rtol=1e-12, atol=1e-12)


def test_hippo_legs_eigenvalues_are_exactly_minus_one_to_minus_n():
    a, _ = hippo_legs(8, dtype=F64)
    eigenvalues = torch.linalg.eigvals(a)
    assert eigenvalues.imag.abs().max() < 1e-10
    assert torch.allclose(eigenvalues.real.sort().values, -torch.arange(8, 0, -1, dtype=F64), rtol=0, atol=1e-10)


def test_hippo_lagt_has_every_eigenvalue_minus_one_half():
    a, _ = hippo_lagt(6, dtype=F64)
    # Its characteristic polynomial is (lambda + 1/2)^N: A + I/2 is nilpotent.
    shifted = a + 0.5 * torch.eye(6, dtype=F64)
    assert torch.equal(torch.linalg.matrix_power(shifted, 6), torch.zeros(6, 6, dtype=F64))
    assert torch.linalg.matrix_power(shifted, 5).abs().max() > 0


@pytest.mark.parametrize("n", [1, 2, 5, 16, 64])
def test_hippo_legt_is_stable(n):
    a, _ = hippo_legt(n, window=0.7, dtype=F64)
    assert torch.linalg.eigvals(a).real.max() < 0


def _legt_reconstruction_error(n: int, window: float = 2.0, end: float = 6.0) -> float:
    """Max error of u on [end - window, end] decoded from the LegT state, with u(t) = sin 4t + cos(6.5t + 1) / 2."""
    signal = lambda t: np.sin(4 * t) + 0.5 * np.cos(6.5 * t + 1)

    class Input:
        channels = 1

        def evaluate(self, t):
            return torch.sin(4 * t)[:, None] + 0.5 * torch.cos(6.5 * t + 1)[:, None]

    a, b = hippo_legt(n, window, dtype=F64)
    t = torch.tensor([0.0, end], dtype=F64)
    controller = nct.PIDController(rtol=1e-8, atol=1e-10)
    state = nct.solve(LinearTerm(a, b, Input()), torch.zeros(1, 1, n, dtype=F64), t, controller=controller)
    coefficients = state.ys[0, -1, 0].numpy()[:, None]
    s = np.linspace(0.0, 1.0, 401)
    degree = np.arange(n)[:, None]
    decoded = (coefficients * np.sqrt(2 * degree + 1) * eval_legendre(degree, 2 * s - 1)).sum(axis=0)
    return float(np.abs(decoded - signal(end - window + s * window)).max())


def test_hippo_legt_state_decodes_the_input_over_its_window_better_as_n_grows():
    errors = [_legt_reconstruction_error(n) for n in (4, 8, 16, 32)]
    assert all(later < earlier for earlier, later in zip(errors, errors[1:]))
    assert errors[-1] < 1e-3


# --- bad input ----------------------------------------------------------------------------------


def _path(features=2, batch=3):
    return PiecewiseConstantPath(torch.zeros(batch, 4, features, dtype=F64))


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: LinearTerm(torch.zeros(3, 4, dtype=F64), torch.zeros(4, dtype=F64), _path()), "`a` must be square"),
        (lambda: LinearTerm(torch.zeros(4, 4, dtype=F64), torch.zeros(3, dtype=F64), _path()), "`b` must be .* 4"),
        (lambda: LinearTerm(torch.zeros(4, 4, dtype=F64), [0.0] * 4, _path()), "`b` must be a floating tensor"),
        (lambda: LinearTerm(torch.zeros(3, 4, 4, dtype=F64), torch.zeros(4, dtype=F64), _path()), "`path` must have H"),
        (
            lambda: LinearTerm(torch.zeros(2, 4, 4, dtype=F64), torch.zeros(3, 4, dtype=F64), _path()),
            "`b` has H = 3 features but `a` has 2",
        ),
        (lambda: LinearTerm(torch.zeros(4, 4), torch.zeros(4), lambda t: t), "`path` must have an evaluate"),
        (
            lambda: LinearTerm(torch.zeros(4, 4), torch.zeros(4), _path(), d=torch.zeros(1)),
            "`d` needs an output matrix `c`",
        ),
        (
            lambda: LinearTerm(torch.zeros(4, 4), torch.zeros(4), _path(), torch.zeros(2, 4), torch.zeros(3)),
            "`d` must be .* 2",
        ),
        (lambda: GBT(alpha=1.5), "`alpha` must be a finite number in \\[0, 1\\]; got 1.5"),
        (lambda: GBT(alpha="0.5"), "`alpha` must be a finite number"),
        (lambda: PiecewiseConstantPath(torch.zeros(4, 2)), "`values` must be a floating tensor \\[B, L, C\\]"),
        (
            lambda: PiecewiseConstantPath(torch.zeros(1, 3, 1), torch.tensor([0.0, 2.0, 1.0])),
            "`times` must be strictly increasing",
        ),
    ],
)
def test_bad_construction_raises_invalid_input_naming_the_argument(build, message):
    with pytest.raises(nct.InvalidInputError, match=message):
        build()


def test_solving_with_a_state_of_the_wrong_shape_names_y0():
    term = LinearTerm(torch.zeros(4, 4, dtype=F64), torch.zeros(4, dtype=F64), _path())
    with pytest.raises(nct.InvalidInputError, match="the state `y0` of a LinearTerm must be \\[B, 2, 4\\]"):
        nct.solve(
            term,
            torch.zeros(3, 2, 5, dtype=F64),
            torch.tensor([0.0, 1.0], dtype=F64),
            solver=ZOH(),
            controller=nct.ConstantStep(0.5),
        )


def test_output_without_c_names_it():
    term = LinearTerm(torch.zeros(4, 4), torch.zeros(4), _path())
    with pytest.raises(nct.InvalidInputError, match="`output` needs the output matrix `c`"):
        term.output(torch.zeros(3, 2, 4))


@pytest.mark.parametrize(
    "term, solver, controller, message",
    [
        (
            nct.ODETerm(lambda t, y, args: -y),
            ZOH(),
            nct.ConstantStep(0.1),
            "ZOH cannot integrate an ODETerm.*LinearTerm",
        ),
        (None, GBT(), nct.PIDController(), "GBT has no error estimate"),
    ],
)
def test_incompatible_solver_combinations_raise_naming_both(term, solver, controller, message):
    term = term or LinearTerm(torch.zeros(4, 4, dtype=F64), torch.zeros(4, dtype=F64), _path())
    y0 = torch.zeros(3, 2, 4, dtype=F64)
    with pytest.raises(nct.IncompatibleTermError, match=message):
        nct.solve(term, y0, torch.tensor([0.0, 1.0], dtype=F64), solver=solver, controller=controller)


def test_registry_names_the_linear_solvers():
    assert registry.solver("zoh") == ZOH()
    assert registry.solver("gbt", alpha=1.0) == GBT(1.0)
    assert "zoh" in registry.names("solver") and "gbt" in registry.names("solver")

"""Delay differential equations: `DelayTerm` and `MethodOfSteps` against exact solutions,
a method-of-steps reference built on SciPy, and torchdde."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

import neuralct as nct
from neuralct.solvers.dde._history import History, Record, Window

F64 = torch.float64


def ones_history(t: torch.Tensor) -> torch.Tensor:
    return torch.ones(t.shape[0], 1, dtype=t.dtype)


def negative_feedback(t, y, y_delayed, args):
    """$y' = -y(t - \\tau)$."""
    return -y_delayed[:, 0]


def exact_negative_feedback(t: torch.Tensor) -> torch.Tensor:
    """Solution of $y' = -y(t-1)$, $y = 1$ on $[-1, 0]$:
    $y(t) = \\sum_{j=0}^{\\lfloor t \\rfloor + 1} (-1)^j (t - j + 1)^j / j!$."""
    terms = [(-1) ** j * (t - j + 1).clamp_min(0) ** j / math.factorial(j) for j in range(int(t.max()) + 2)]
    return torch.stack(terms).sum(dim=0)


def scipy_method_of_steps(f, history, delays, y0, t_end, breakpoints):
    """Reference: SciPy's DOP853 (rtol 1e-12) from breakpoint to breakpoint, the delayed values
    read from the dense output of the finished pieces (Bellen & Zennaro, section 3.2)."""
    pieces = []

    def lookup(s):
        if s <= 0:
            return history(s)
        for a, b, dense in reversed(pieces):
            if a <= s <= b + 1e-14:
                return dense(min(s, b))
        raise AssertionError(f"no piece covers {s}")

    y = np.asarray(y0, dtype=float)
    ends = sorted(b for b in set(breakpoints) if 0 < b < t_end) + [t_end]
    for a, b in zip([0.0] + ends[:-1], ends):
        rhs = lambda t, y: f(t, y, [lookup(t - tau) for tau in delays])  # noqa: E731
        sol = solve_ivp(rhs, (a, b), y, method="DOP853", rtol=1e-12, atol=1e-13, dense_output=True)
        pieces.append((a, b, sol.sol))
        y = sol.y[:, -1]
    return lambda ts: np.stack([lookup(float(s)) if s > 0 else np.asarray(y0, dtype=float) for s in ts])


def tight() -> nct.PIDController:
    return nct.PIDController(rtol=1e-10, atol=1e-12)


def solve(term, y0, t, solver=None, controller=None, **options):
    """`nct.solve` with `MethodOfSteps(Tsit5())` at tight tolerances unless told otherwise."""
    solver = solver or nct.MethodOfSteps()
    return nct.solve(term, y0, t, solver=solver, controller=controller or tight(), **options)


def rk4(dt: float) -> dict:
    return {"solver": nct.MethodOfSteps(nct.RK4()), "controller": nct.ConstantStep(dt)}


# ---------------------------------------------------------------- exact solutions and order


def test_negative_feedback_matches_exact_piecewise_polynomial_on_first_three_intervals():
    term = nct.DelayTerm(negative_feedback, [1.0], ones_history)
    t = torch.linspace(0, 3, 31, dtype=F64)
    sol = solve(term, torch.ones(2, 1, dtype=F64), t, dense=True)
    assert (sol.ys[..., 0] - exact_negative_feedback(t)).abs().max() < 1e-8
    between = torch.tensor([[0.37, 1.5, 2.99]] * 2, dtype=F64)
    assert (sol.evaluate(between)[..., 0] - exact_negative_feedback(between)).abs().max() < 1e-8


def test_negative_feedback_stays_accurate_once_the_solution_is_no_longer_polynomial_in_the_steps():
    term = nct.DelayTerm(negative_feedback, [1.0], ones_history)
    t = torch.linspace(0, 8, 33, dtype=F64)
    sol = solve(term, torch.ones(1, 1, dtype=F64), t)
    assert (sol.ys[0, :, 0] - exact_negative_feedback(t)).abs().max() < 1e-8


def test_rk4_method_of_steps_converges_at_fourth_order():
    # On [0, 3] RK4 is exact (the solution is a cubic there); beyond, its Hermite history is not.
    term = nct.DelayTerm(negative_feedback, [1.0], ones_history)
    t = torch.linspace(0, 6, 13, dtype=F64)
    steps = [1 / 4, 1 / 8, 1 / 16, 1 / 32]
    errors = []
    for dt in steps:
        sol = solve(term, torch.ones(1, 1, dtype=F64), t, **rk4(dt))
        errors.append(float((sol.ys[0, :, 0] - exact_negative_feedback(t)).abs().max()))
    slope = np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert abs(slope - 4) < 0.3, (errors, slope)


STEP_AT = 0.37


class Knots:
    """An input that only declares its knots (`jump_times`), `[J]` or `[B, J]`."""

    def __init__(self, times: torch.Tensor):
        self.times = times

    def jump_times(self) -> torch.Tensor:
        return self.times


def stepped_feedback(t, y, y_delayed, args):
    """$y' = -y(t - 1) + 1\\{t \\ge 0.37\\}$ (the input read from the right at its knot)."""
    return -y_delayed[:, 0] + (t >= STEP_AT).to(y.dtype)[:, None]


def exact_stepped_feedback(t: torch.Tensor) -> torch.Tensor:
    """Solution of `stepped_feedback` with $y = 1$ on $[-1, 0]$: that of $y' = -y(t - 1)$ plus
    the step's response $u(t) = \\sum_{j \\ge 0} (-1)^j (t - a - j)_+^{j+1} / (j+1)!$, $a = 0.37$
    ($u = 0$ up to $a$; term $j$ differentiates to minus term $j - 1$ delayed by 1, and term 0
    to the step). So $y'$ jumps at $a$, $y''$ at $a + 1$, $y'''$ at $a + 2$, and so on."""
    pieces = range(int(t.max()) + 2)
    response = sum((-1) ** j * (t - STEP_AT - j).clamp_min(0) ** (j + 1) / math.factorial(j + 1) for j in pieces)
    return exact_negative_feedback(t) + response


def stepped_term() -> nct.DelayTerm:
    return nct.DelayTerm(stepped_feedback, [1.0], ones_history, inputs=Knots(torch.tensor([STEP_AT], dtype=F64)))


def test_closed_form_of_the_stepped_input_problem_solves_it_on_every_piece_by_scipy():
    # From each breakpoint to the next, y' = -y(t - 1) + input is an ODE in y alone (the
    # delayed value is the closed form one delay back): SciPy carries the closed form across.
    edges = sorted({0.0, 6.0} | {k + s for k in range(6) for s in (0.0, STEP_AT)})
    for a, b in zip(edges[:-1], edges[1:]):
        held = 1.0 if a >= STEP_AT else 0.0

        def rhs(s, y, held=held):
            return [-float(exact_stepped_feedback(torch.tensor([s - 1.0], dtype=F64))[0]) + held]

        start = exact_stepped_feedback(torch.tensor([a, b], dtype=F64))
        end = solve_ivp(rhs, (a, b), [float(start[0])], method="DOP853", rtol=1e-12, atol=1e-13).y[0, -1]
        assert abs(end - float(start[1])) < 1e-11, (a, b)


@pytest.mark.parametrize("inner", [nct.RK4(), nct.Tsit5(), nct.Dopri8()], ids=["rk4", "tsit5", "dopri8"])
def test_fixed_steps_with_a_stepped_input_converge_at_the_declared_order(inner):
    # The input's jump at 0.37 reaches y'' at 1.37 and y''' at 2.37 through the delay; steps
    # across those times left RK4 at order 1.9. Dopri8's history is the cubic Hermite
    # interpolant, which caps it at order 4 (and it declares 4).
    t = torch.linspace(0, 6, 13, dtype=F64)
    steps = [0.2, 0.1, 0.05, 0.025]
    errors = []
    for dt in steps:
        sol = solve(stepped_term(), torch.ones(1, 1, dtype=F64), t, nct.MethodOfSteps(inner), nct.ConstantStep(dt))
        errors.append(float((sol.ys[0, :, 0] - exact_stepped_feedback(t)).abs().max()))
    slope = np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert abs(slope - nct.MethodOfSteps(inner).order) < 0.3, (errors, slope)


def test_adaptive_solve_with_a_stepped_input_stays_within_its_tolerance_without_rejections():
    # Stepping across the input's shifted knots, Tsit5 ended 23x over tolerance after 21 rejections.
    t = torch.linspace(0, 6, 13, dtype=F64)
    tol = 1e-6
    sol = solve(stepped_term(), torch.ones(1, 1, dtype=F64), t, controller=nct.PIDController(rtol=tol, atol=tol))
    exact = exact_stepped_feedback(t)
    assert float(((sol.ys[0, :, 0] - exact).abs() / (tol + tol * exact.abs())).max()) < 10
    assert int(sol.stats.rejected[0]) <= 3


def test_discontinuous_initial_value_takes_the_one_sided_limits_at_the_breakpoint():
    # y' = -y(t - 1), history cos(t), y(0) = 0.5 != cos(0): y' jumps at 0 and y'' at 1.
    y0 = 0.5
    term = nct.DelayTerm(negative_feedback, [1.0], lambda t: torch.cos(t)[:, None])
    t = torch.linspace(0, 2, 21, dtype=F64)
    sol = solve(term, torch.full((1, 1), y0, dtype=F64), t)
    first = y0 - (torch.sin(t - 1) + math.sin(1))
    y1 = y0 - math.sin(1)
    second = y1 - ((y0 - math.sin(1)) * (t - 1) + torch.cos(t - 2) - math.cos(1))
    exact = torch.where(t <= 1, first, second)
    assert (sol.ys[0, :, 0] - exact).abs().max() < 1e-8


def test_steps_never_exceed_the_smallest_delay_even_with_a_longer_fixed_step():
    term = nct.DelayTerm(negative_feedback, [1.0], ones_history)
    t = torch.tensor([0.0, 3.0], dtype=F64)
    sol = solve(term, torch.ones(1, 1, dtype=F64), t, **rk4(5.0))
    assert sol.stats.steps.tolist() == [3]
    assert abs(float(sol.ys[0, -1, 0] - exact_negative_feedback(t)[-1])) < 1e-12


def test_method_of_steps_takes_order_and_adaptivity_from_its_inner_solver_and_history():
    assert nct.MethodOfSteps().order == 5 and nct.MethodOfSteps().error_order == 4
    assert nct.MethodOfSteps().adaptive
    assert nct.MethodOfSteps(nct.RK4()).order == 4 and not nct.MethodOfSteps(nct.RK4()).adaptive
    assert nct.MethodOfSteps(nct.Dopri8()).order == 4  # a cubic Hermite history: min(8, 3 + 1)


# ---------------------------------------------------------------- nonlinear problems vs references


def logistic(t, y, y_delayed, args):
    """Hutchinson's delayed logistic equation $y' = r y (1 - y(t - \\tau))$, r = 1.4."""
    return 1.4 * y * (1 - y_delayed[:, 0])


@pytest.mark.filterwarnings("ignore:b_err_list is only zeros")
def test_delayed_logistic_agrees_with_scipy_method_of_steps_and_torchdde():
    torchdde = pytest.importorskip("torchdde")
    t = torch.linspace(0, 10, 41, dtype=F64)
    term = nct.DelayTerm(logistic, [1.0], lambda t: torch.full((t.shape[0], 1), 0.5, dtype=t.dtype))
    ours = solve(term, torch.full((1, 1), 0.5, dtype=F64), t).ys[0, :, 0]

    reference = scipy_method_of_steps(
        lambda t, y, yd: 1.4 * y * (1 - yd[0]), lambda s: np.array([0.5]), [1.0], [0.5], 10.0, list(range(1, 10))
    )(t.numpy())[:, 0]
    assert np.abs(ours.numpy() - reference).max() < 1e-8

    def field(t, y, args, *, history):
        return 1.4 * y * (1 - history[0])

    def phi(s):
        return torch.full((1, 1), 0.5, dtype=F64)

    rk4 = torchdde.integrate(
        field,
        torchdde.RK4(),
        t[0],
        t[-1],
        t,
        phi,
        None,
        dt0=torch.tensor(0.01, dtype=F64),
        delays=torch.tensor([1.0], dtype=F64),
        discretize_then_optimize=True,
        max_steps=2000,
    )
    assert (rk4[0, :, 0] - ours).abs().max() < 1e-6
    # torchdde's Dopri5 interpolant is float32 only, hence the float32 solve and tolerance.
    dopri5 = torchdde.integrate(
        field,
        torchdde.Dopri5(),
        t[0].float(),
        t[-1].float(),
        t.float(),
        lambda s: torch.full((1, 1), 0.5),
        None,
        stepsize_controller=torchdde.AdaptiveStepSizeController(atol=1e-7, rtol=1e-7),
        delays=torch.tensor([1.0]),
        discretize_then_optimize=True,
        max_steps=2000,
    )
    assert (dopri5[0, :, 0].double() - ours).abs().max() < 1e-4


@pytest.mark.filterwarnings("ignore:b_err_list is only zeros")
def test_two_incommensurate_delays_agree_with_scipy_method_of_steps_and_torchdde():
    torchdde = pytest.importorskip("torchdde")
    delays = [1.0, 0.7]
    t = torch.linspace(0, 4, 17, dtype=F64)

    def field(t, y, y_delayed, args):
        return -0.8 * y_delayed[:, 0] + 0.5 * torch.sin(y_delayed[:, 1]) - 0.1 * y

    term = nct.DelayTerm(field, delays, lambda t: torch.cos(t)[:, None])
    ours = solve(term, torch.ones(1, 1, dtype=F64), t).ys[0, :, 0]
    breakpoints = [i + 0.7 * j for i in range(5) for j in range(7)]
    reference = scipy_method_of_steps(
        lambda t, y, yd: -0.8 * yd[0] + 0.5 * np.sin(yd[1]) - 0.1 * y,
        lambda s: np.array([math.cos(s)]),
        delays,
        [1.0],
        4.0,
        breakpoints,
    )(t.numpy())[:, 0]
    assert np.abs(ours.numpy() - reference).max() < 1e-8

    peer = torchdde.integrate(
        lambda t, y, args, *, history: -0.8 * history[0] + 0.5 * torch.sin(history[1]) - 0.1 * y,
        torchdde.RK4(),
        t[0],
        t[-1],
        t,
        lambda s: torch.cos(s).reshape(1, 1),
        None,
        dt0=torch.tensor(0.005, dtype=F64),
        delays=torch.tensor(delays, dtype=F64),
        discretize_then_optimize=True,
        max_steps=2000,
    )
    assert (peer[0, :, 0] - ours).abs().max() < 1e-5


def test_mackey_glass_agrees_with_scipy_method_of_steps():
    # Mackey & Glass, Science 197 (1977): y' = b y(t - tau) / (1 + y(t - tau)^10) - g y, tau = 17.
    def field(t, y, y_delayed, args):
        lagged = y_delayed[:, 0]
        return 0.2 * lagged / (1 + lagged**10) - 0.1 * y

    t = torch.linspace(0, 100, 51, dtype=F64)
    term = nct.DelayTerm(field, [17.0], lambda t: torch.full((t.shape[0], 1), 1.2, dtype=t.dtype))
    ours = solve(term, torch.full((1, 1), 1.2, dtype=F64), t).ys[0, :, 0]
    reference = scipy_method_of_steps(
        lambda t, y, yd: 0.2 * yd[0] / (1 + yd[0] ** 10) - 0.1 * y, lambda s: np.array([1.2]), [17.0], [1.2], 100.0,
        [17.0 * k for k in range(1, 6)],
    )(t.numpy())[:, 0]  # fmt: skip
    assert np.abs(ours.numpy() - reference).max() < 1e-7


# ---------------------------------------------------------------- batches, grids and direction


def per_sample_problem():
    def field(t, y, y_delayed, rate):
        return -rate * y_delayed[:, 0] + 0.3 * torch.tanh(y_delayed[:, 1]) + 0.1 * torch.sin(t)[:, None]

    term = nct.DelayTerm(field, [0.6, 0.25], lambda t: torch.stack([torch.cos(t), torch.sin(t)], dim=1))
    t = torch.tensor([[0.0, 0.5, 1.7, 3.0], [1.0, 1.2, 2.0, 2.5], [-1.0, 0.0, 1.0, 4.0]], dtype=F64)
    y0 = torch.tensor([[1.0, 0.0], [0.2, -0.4], [0.5, 0.5]], dtype=F64)
    rate = torch.tensor([[1.0], [2.0], [0.5]], dtype=F64)
    return term, t, y0, rate


@pytest.mark.parametrize(
    "options",
    [{"controller": nct.PIDController(rtol=1e-8, atol=1e-10)}, rk4(0.05)],
    ids=["tsit5-pid", "rk4-constant"],
)
def test_per_sample_time_grids_give_each_sample_its_own_solve(options):
    term, t, y0, rate = per_sample_problem()
    batch = solve(term, y0, t, args=rate, **options)
    for b in range(3):
        alone = solve(term, y0[b : b + 1], t[b : b + 1], args=rate[b : b + 1], **options)
        torch.testing.assert_close(batch.ys[b], alone.ys[0], rtol=0, atol=1e-12)
        assert batch.stats.steps[b] == alone.stats.steps[0]
        # A batch mate's restart at its own breakpoint evaluates every slope, but is not
        # charged to this sample: its count is that of its solve alone.
        assert batch.stats.vf_evals[b] == alone.stats.vf_evals[0]


def test_backward_solve_is_the_time_reversal_of_a_forward_solve():
    # Backward in time the delayed value is y(t + tau): y' = -y(t + 1) for t < 0 reflects
    # z' = z(s - 1) for s = -t > 0; one batch holds both directions.
    term = nct.DelayTerm(lambda t, y, y_delayed, sign: sign * y_delayed[:, 0], [1.0], ones_history)
    s = torch.linspace(0, 2.5, 11, dtype=F64)
    t = torch.stack([s, -s])
    sol = solve(term, torch.ones(2, 1, dtype=F64), t, args=torch.tensor([[1.0], [-1.0]], dtype=F64))
    growth = torch.where(s <= 1, 1 + s, 1 + s + (s - 1) ** 2 / 2)
    growth = torch.where(s <= 2, growth, 1 + s + (s - 1) ** 2 / 2 + (s - 2) ** 3 / 6)
    torch.testing.assert_close(sol.ys[0, :, 0], growth, rtol=0, atol=1e-9)
    torch.testing.assert_close(sol.ys[1, :, 0], growth, rtol=0, atol=1e-9)


def test_jump_times_list_every_breakpoint_per_sample_in_the_direction_of_time():
    term = nct.DelayTerm(negative_feedback, [1.0, 0.7], ones_history)
    t = torch.tensor([[0.0, 2.5], [1.0, -0.5]], dtype=F64)
    offsets = torch.tensor([0.7, 1.0, 1.4, 1.7, 2.0, 2.1, 2.4], dtype=F64)
    backward = torch.cat([1.0 - offsets[:3], torch.full((4,), -torch.inf, dtype=F64)])
    torch.testing.assert_close(term.jump_times(t), torch.stack([offsets, backward]))


def test_jump_times_carry_each_input_knot_inside_the_span_forward_by_the_delays():
    # Depth 2: a knot s adds s + 1 and s + 2 (forward) or s - 1 (backward, inside the span).
    # Knots outside the span are merged as given but carry nothing: before t0 the history
    # holds, and past the end nothing is solved.
    knots = Knots(torch.tensor([[-0.5, 0.25, 4.0], [0.5, -0.75, -3.0]], dtype=F64))
    term = nct.DelayTerm(negative_feedback, [1.0], ones_history, breakpoint_depth=2, inputs=knots)
    t = torch.tensor([[0.0, 3.5], [0.0, -2.5]], dtype=F64)
    forward = [-0.5, 0.25, 1.0, 1.25, 2.0, 2.25, 3.0, 4.0]
    backward = [0.5, -0.75, -1.0, -1.75, -2.0, -3.0] + [-math.inf] * 2
    torch.testing.assert_close(term.jump_times(t), torch.tensor([forward, backward], dtype=F64))


@pytest.mark.parametrize(
    ("inner", "shifts"), [(nct.Euler(), []), (nct.Midpoint(), [1.25]), (nct.RK4(), [1.25, 2.25, 3.25])]
)
def test_the_method_of_steps_lands_on_the_knot_shifts_its_order_notices(inner, shifts):
    # A knot shifted by m delays is a jump of y^(m + 1), which costs an order-p method
    # accuracy only when m + 1 < p: Euler needs the knot alone, Midpoint one shift, RK4 three.
    knots = Knots(torch.tensor([[0.25]], dtype=F64))
    term = nct.DelayTerm(negative_feedback, [1.0], ones_history, inputs=knots)
    t = torch.tensor([[0.0, 3.5]], dtype=F64)
    expected = sorted([0.25, 1.0, 2.0, 3.0] + shifts)
    jumps = nct.MethodOfSteps(inner).jump_times(term, t)
    torch.testing.assert_close(jumps, torch.tensor([expected], dtype=F64))


@pytest.mark.parametrize("inner", [nct.RK4(), nct.Dopri8()], ids=["rk4-constant", "dopri8-pid"])
def test_save_times_on_breakpoints_are_landed_on_once(inner):
    # Save times 1, 2 are breakpoints; a fixed-step or non-interpolating solve lands on each once.
    term = nct.DelayTerm(negative_feedback, [1.0], ones_history)
    t = torch.tensor([0.0, 1.0, 2.0, 3.0], dtype=F64)
    controller = nct.ConstantStep(0.25) if isinstance(inner, nct.RK4) else nct.PIDController(rtol=1e-10, atol=1e-12)
    sol = solve(term, torch.ones(1, 1, dtype=F64), t, nct.MethodOfSteps(inner), controller, max_steps=200)
    torch.testing.assert_close(sol.ys[0, :, 0], exact_negative_feedback(t), rtol=0, atol=1e-10)
    if isinstance(inner, nct.RK4):
        assert sol.stats.steps.tolist() == [12]


# ---------------------------------------------------------------- gradients


def small_solve(y0, weights, rate, delay=0.5, solver=None, gradient=None):
    """y' = rate y - y(t - delay) with history weights[0] + weights[1] t, on a fixed grid."""
    term = nct.DelayTerm(
        lambda t, y, y_delayed, args: rate * y - y_delayed[:, 0],
        delay,
        lambda t: weights[:, :1] + weights[:, 1:] * t[:, None],
    )
    t = torch.tensor([0.0, 0.6, 1.3], dtype=F64)
    solver = solver or nct.MethodOfSteps(nct.RK4())
    return solve(term, y0, t, solver, nct.ConstantStep(0.1), gradient=gradient or nct.Backprop()).ys


def test_gradcheck_through_a_delay_solve_reaches_initial_state_history_and_field():
    y0 = torch.tensor([[0.8], [0.3]], dtype=F64, requires_grad=True)
    weights = torch.tensor([[1.0, 0.3], [0.5, -0.2]], dtype=F64, requires_grad=True)
    rate = torch.tensor([-0.5], dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *args: small_solve(*args, delay=[0.5]), (y0, weights, rate))


def test_gradcheck_through_a_learnable_delay():
    # The breakpoint grid moves with the delay; the gradient follows it (exact for the discrete solve).
    y0 = torch.tensor([[0.8]], dtype=F64)
    weights = torch.tensor([[1.0, 0.3]], dtype=F64)
    rate = torch.tensor([-0.5], dtype=F64)
    delay = torch.tensor([0.53], dtype=F64, requires_grad=True)
    tsit5 = nct.MethodOfSteps(nct.Tsit5())
    assert torch.autograd.gradcheck(lambda d: small_solve(y0, weights, rate, delay=d, solver=tsit5), (delay,))


@pytest.mark.parametrize("spelling", ["parameter", "list-of-tensors"])
def test_learnable_delay_gradient_matches_finite_differences_of_accurate_solves(spelling):
    # A 1-D nn.Parameter, or a list holding a tensor that requires grad (which `float` used to
    # detach, leaving no gradient): both are learnable delays.
    if spelling == "parameter":
        delay = torch.nn.Parameter(torch.tensor([0.7], dtype=F64))
        delays = delay
    else:
        delay = torch.tensor(0.7, dtype=F64, requires_grad=True)
        delays = [delay]
    term = nct.DelayTerm(lambda t, y, y_delayed, args: -2.0 * y_delayed[:, 0], delays, lambda t: torch.cos(t)[:, None])

    def final(tau_shift=0.0):
        with torch.no_grad():
            delay.add_(tau_shift)
        y = solve(term, torch.ones(1, 1, dtype=F64), torch.tensor([0.0, 2.0], dtype=F64)).ys
        with torch.no_grad():
            delay.sub_(tau_shift)
        return y[0, -1, 0]

    final().backward()
    with torch.no_grad():
        numeric = (final(1e-5) - final(-1e-5)) / 2e-5
    assert delay.grad is not None
    assert abs(float(delay.grad.sum()) - float(numeric)) < 1e-6 * max(1.0, abs(float(numeric)))


def test_a_list_of_delay_parameters_is_registered_with_the_term():
    delay = torch.nn.Parameter(torch.tensor(0.5, dtype=F64))
    term = nct.DelayTerm(negative_feedback, [delay, 1.0], ones_history)
    assert any(p is delay for p in term.parameters())
    assert term.delay_values(torch.ones(1, dtype=F64)).tolist() == [0.5, 1.0]


def test_checkpointed_backprop_gives_the_same_gradients():
    y0 = torch.tensor([[0.8]], dtype=F64, requires_grad=True)
    weights = torch.tensor([[1.0, 0.3]], dtype=F64, requires_grad=True)
    rate = torch.tensor([-0.5], dtype=F64)
    plain = torch.autograd.grad(small_solve(y0, weights, rate, delay=[0.5]).sum(), (y0, weights))
    checkpointed = small_solve(y0, weights, rate, delay=[0.5], gradient=nct.Backprop(checkpoint_every=4))
    for a, b in zip(plain, torch.autograd.grad(checkpointed.sum(), (y0, weights))):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------- history storage


def test_history_lookups_read_only_the_recent_chunks():
    batch, chunk = 2, 8
    history = History.empty(torch.zeros(batch, dtype=F64), torch.ones(batch, dtype=F64), chunk)
    for i in range(400):
        t0 = torch.full((batch,), 0.01 * i, dtype=F64)
        y = torch.full((batch, 1), float(i), dtype=F64)
        coeffs = torch.ones(batch, 1, 1, dtype=F64)  # slope 1 per step: y(t) = i + theta
        history = history.append(Record(t0, t0 + 0.01, y, coeffs), torch.ones(batch, dtype=torch.bool))
    assert len(history.chunks) == 50
    rows = torch.ones(batch, 1, dtype=torch.bool)
    window = history.window(torch.full((batch,), 4.0, dtype=F64), torch.tensor([0.1], dtype=F64), rows)
    assert window is not None and window.steps.width <= 3 * chunk
    values = window.evaluate(torch.tensor([[3.905], [3.99]], dtype=F64))
    torch.testing.assert_close(values[:, 0, 0], torch.tensor([390.5, 399.0], dtype=F64))


@pytest.mark.parametrize("inner", [nct.Dopri5(), nct.RK4()], ids=["fsal", "not-fsal"])
def test_each_step_looks_up_the_delayed_values_of_all_its_stages_in_one_batch(inner, monkeypatch):
    queries = []
    evaluate = Window.evaluate

    def spy(window, times):
        queries.append(times.shape[1])
        return evaluate(window, times)

    monkeypatch.setattr(Window, "evaluate", spy)
    term = nct.DelayTerm(negative_feedback, [1.0], ones_history)
    controller = nct.ConstantStep(0.25) if isinstance(inner, nct.RK4) else tight()
    sol = solve(
        term, torch.ones(1, 1, dtype=F64), torch.linspace(0, 4, 5, dtype=F64), nct.MethodOfSteps(inner), controller
    )
    # Every step past the first delay reads the solution once, for all its stages (one delay):
    # the stages after the first (which is the previous step's end slope), plus the start when
    # a breakpoint restarts it.
    steps = int(sol.stats.steps[0])
    assert 0 < len(queries) <= steps
    assert set(queries) <= {len(inner.nodes) - 1, len(inner.nodes)}


def test_history_chunk_size_does_not_change_the_solution():
    term, t, y0, rate = per_sample_problem()
    default = solve(term, y0, t, args=rate, controller=nct.PIDController(rtol=1e-8, atol=1e-10))
    tiny = solve(term, y0, t, nct.MethodOfSteps(chunk_size=2), nct.PIDController(rtol=1e-8, atol=1e-10), args=rate)
    torch.testing.assert_close(default.ys, tiny.ys, rtol=0, atol=1e-13)


def test_float32_state_with_default_times_matches_float64():
    term = nct.DelayTerm(logistic, [1.0], lambda t: torch.full((t.shape[0], 1), 0.5, dtype=t.dtype))
    t = torch.linspace(0, 10, 11)
    single = solve(term, torch.full((1, 1), 0.5), t, controller=nct.PIDController(rtol=1e-6, atol=1e-8)).ys
    double = solve(term, torch.full((1, 1), 0.5, dtype=F64), t.double()).ys
    assert single.dtype == torch.float32
    assert (single.double() - double).abs().max() < 1e-4


# ---------------------------------------------------------------- errors


def test_zero_or_negative_delay_is_rejected_naming_delays():
    for bad in ([1.0, 0.0], [-0.5], torch.tensor([0.2, -1.0])):
        with pytest.raises(nct.InvalidInputError, match=r"`delays` must be positive.*delays\[\d\]"):
            nct.DelayTerm(negative_feedback, bad, ones_history)


def test_empty_delays_are_rejected_naming_delays():
    with pytest.raises(nct.InvalidInputError, match="`delays` must be a non-empty 1-D"):
        nct.DelayTerm(negative_feedback, [], ones_history)


def test_learnable_delay_that_became_non_positive_is_rejected_at_solve_time():
    delay = torch.nn.Parameter(torch.tensor([0.5], dtype=F64))
    term = nct.DelayTerm(negative_feedback, delay, ones_history)
    with torch.no_grad():
        delay.fill_(-0.1)
    with pytest.raises(nct.InvalidInputError, match="`delays` must be positive"):
        solve(term, torch.ones(1, 1, dtype=F64), torch.tensor([0.0, 1.0], dtype=F64))


def test_learnable_delays_in_a_list_must_be_scalars_naming_delays():
    with pytest.raises(nct.InvalidInputError, match=r"`delays` given as a sequence must hold scalars.*delays\[0\]"):
        nct.DelayTerm(negative_feedback, [torch.ones(2, requires_grad=True)], ones_history)


@pytest.mark.parametrize(
    "wrong",
    [
        lambda y: torch.cat([y, y], dim=1),
        lambda y: y.float(),
        lambda y: y.long(),
        lambda y: torch.empty_like(y, device="meta"),
        lambda y: y.tolist(),
    ],
    ids=["shape", "float32", "int64", "device", "not-a-tensor"],
)
def test_a_field_of_the_wrong_shape_dtype_or_device_is_refused_naming_the_term(wrong):
    term = nct.DelayTerm(lambda t, y, y_delayed, args: wrong(-y_delayed[:, 0]), [1.0], ones_history)
    with pytest.raises(nct.IncompatibleTermError, match=r"the vector field of DelayTerm must return .*\(2, 1\)"):
        solve(term, torch.ones(2, 1, dtype=F64), torch.tensor([0.0, 1.5], dtype=F64), **rk4(0.25))


def test_history_of_the_wrong_shape_is_rejected_naming_history():
    expected = r"`history` must give values of shape \[B, \*state\] = \(2, 1\)"
    for history in (torch.ones(2, 3, dtype=F64), lambda t: torch.ones(t.shape[0], 3, dtype=t.dtype)):
        term = nct.DelayTerm(negative_feedback, [1.0], history)
        with pytest.raises(nct.InvalidInputError, match=expected):
            solve(term, torch.ones(2, 1, dtype=F64), torch.tensor([0.0, 1.0], dtype=F64))


def test_history_of_the_wrong_dtype_is_rejected_naming_history():
    term = nct.DelayTerm(negative_feedback, [1.0], lambda t: torch.ones(t.shape[0], 1, dtype=torch.float32))
    with pytest.raises(nct.InvalidInputError, match="`history` must give values of dtype torch.float64"):
        solve(term, torch.ones(2, 1, dtype=F64), torch.tensor([0.0, 1.0], dtype=F64))


def test_history_that_is_neither_callable_nor_tensor_is_rejected():
    with pytest.raises(nct.InvalidInputError, match="`history` must be a callable"):
        nct.DelayTerm(negative_feedback, [1.0], 1.0)


def test_ode_solver_refuses_a_delay_term_naming_both():
    term = nct.DelayTerm(negative_feedback, [1.0], ones_history)
    with pytest.raises(nct.IncompatibleTermError, match="Tsit5 cannot integrate a DelayTerm"):
        nct.solve(term, torch.ones(1, 1), torch.tensor([0.0, 1.0]), solver=nct.Tsit5())


def test_method_of_steps_refuses_an_ode_term_naming_both():
    ode = nct.ODETerm(lambda t, y, args: -y)
    with pytest.raises(
        nct.IncompatibleTermError, match="MethodOfSteps cannot integrate an ODETerm; it accepts: DelayTerm"
    ):
        solve(ode, torch.ones(1, 1), torch.tensor([0.0, 1.0]))


def test_method_of_steps_needs_an_explicit_runge_kutta_inner_solver():
    with pytest.raises(nct.IncompatibleTermError, match="`solver` must be an explicit Runge-Kutta method"):
        nct.MethodOfSteps(nct.MethodOfSteps())  # type: ignore[arg-type]


def test_adaptive_control_of_method_of_steps_around_rk4_is_refused():
    term = nct.DelayTerm(negative_feedback, [1.0], ones_history)
    with pytest.raises(nct.IncompatibleTermError, match="MethodOfSteps has no error estimate"):
        nct.solve(term, torch.ones(1, 1), torch.tensor([0.0, 1.0]), solver=nct.MethodOfSteps(nct.RK4()))


def test_backsolve_refuses_a_delay_term():
    term = nct.DelayTerm(negative_feedback, [1.0], ones_history)
    with pytest.raises(nct.IncompatibleTermError, match="DelayTerm"):
        solve(term, torch.ones(1, 1), torch.tensor([0.0, 1.0]), gradient=nct.Backsolve())


def test_invalid_chunk_size_is_rejected_naming_it():
    with pytest.raises(nct.InvalidInputError, match="`chunk_size` must be a positive int; got 0"):
        nct.MethodOfSteps(chunk_size=0)

"""Every bad input to the ODE core raises its named error, and the message names the argument.

One test per message: the exception type is checked (InvalidInputError is a ValueError,
IncompatibleTermError a TypeError) and so is the part of the message that tells the user
which argument is wrong and what came.
"""

from __future__ import annotations

import re

import pytest
import torch

import neuralct as nct


def decay(t, y, args):
    return -y


TERM = nct.ODETerm(decay)
Y0 = torch.ones(2, 3)
T = torch.tensor([0.0, 0.5, 1.0])


def solve(**overrides):
    kwargs = dict(term=TERM, y0=Y0, t=T)
    kwargs.update(overrides)
    return nct.solve(kwargs.pop("term"), kwargs.pop("y0"), kwargs.pop("t"), **kwargs)


# --- time grid -------------------------------------------------------------------------------


def test_non_monotonic_t_names_the_sample_and_index():
    t = torch.tensor([[0.0, 1.0, 2.0], [0.0, 2.0, 1.5]])
    with pytest.raises(nct.InvalidInputError, match=re.escape("sample 1")) as info:
        solve(t=t)
    message = str(info.value)
    assert "`t`" in message and "monotonic" in message
    assert "t[1, 2] = 1.5 after t[1, 1] = 2" in message


def test_repeated_time_in_a_shared_grid_is_not_monotonic():
    with pytest.raises(
        nct.InvalidInputError, match=r"`t` must be strictly monotonic.*t\[0, 2\] = 1 after t\[0, 1\] = 1"
    ):
        solve(t=torch.tensor([0.0, 1.0, 1.0]))


def test_a_row_that_turns_back_is_not_monotonic_even_if_it_starts_backward():
    t = torch.tensor([[0.0, 1.0, 2.0], [2.0, 1.0, 1.5]])
    with pytest.raises(nct.InvalidInputError, match=r"sample 1 is decreasing"):
        solve(t=t)


def test_t_with_the_wrong_batch_size_is_rejected():
    t = torch.arange(4.0).expand(3, 4)
    with pytest.raises(nct.InvalidInputError, match=r"`t` must have shape \[K\] or \[B, K\] with B = 2.*\(3, 4\)"):
        solve(t=t)


def test_three_dimensional_t_is_rejected():
    with pytest.raises(nct.InvalidInputError, match=r"`t` must have shape .*\(2, 2, 2\)"):
        solve(t=torch.arange(8.0).reshape(2, 2, 2))


def test_empty_t_is_rejected_and_the_message_shows_the_shape_passed():
    with pytest.raises(nct.InvalidInputError, match=r"`t` must have shape .*K >= 1; got \(0,\)"):
        solve(t=torch.zeros(0))
    with pytest.raises(nct.InvalidInputError, match=r"`t` must have shape .*K >= 1; got \(2, 0\)"):
        solve(t=torch.zeros(2, 0))


def test_integer_t_is_rejected():
    with pytest.raises(nct.InvalidInputError, match=r"`t` must be a floating tensor; got .*torch.int64"):
        solve(t=torch.tensor([0, 1]))


def test_t_that_is_not_a_tensor_is_rejected():
    with pytest.raises(nct.InvalidInputError, match=r"`t` must be a floating tensor; got \[0.0, 1.0\]"):
        solve(t=[0.0, 1.0])


def test_float32_t_with_float64_y0_is_rejected():
    with pytest.raises(
        nct.InvalidInputError, match=r"`t` has dtype torch.float32, less precise than `y0` \(torch.float64\)"
    ):
        solve(y0=Y0.double(), t=torch.tensor([0.0, 1.0]))


def test_non_finite_t_is_rejected():
    with pytest.raises(nct.InvalidInputError, match=r"`t` must be finite; t\[0, 1\] = nan"):
        solve(t=torch.tensor([0.0, float("nan")]))
    with pytest.raises(nct.InvalidInputError, match=r"`t` must be finite"):
        solve(t=torch.tensor([0.0, float("inf")]))


def test_float64_t_over_a_float32_state_is_allowed():
    sol = solve(t=T.double())
    assert sol.ys.dtype == torch.float32 and bool(sol.succeeded.all())


# --- initial state ---------------------------------------------------------------------------


def test_y0_with_nan_names_the_entry():
    with pytest.raises(nct.InvalidInputError, match=re.escape("`y0` must be finite; y0[0, 1] = nan")):
        solve(y0=torch.tensor([[1.0, float("nan")]]))


def test_y0_without_a_batch_dimension_is_rejected():
    with pytest.raises(nct.InvalidInputError, match=r"`y0` must have shape \[B, \*state\].*got \(3,\)"):
        solve(y0=torch.ones(3))


def test_empty_batch_is_rejected():
    with pytest.raises(nct.InvalidInputError, match=r"`y0` must have shape \[B, \*state\] with B >= 1.*got \(0, 3\)"):
        solve(y0=torch.ones(0, 3))


def test_integer_y0_is_rejected():
    with pytest.raises(nct.InvalidInputError, match=r"`y0` must be a floating tensor; got .*torch.int64"):
        solve(y0=torch.ones(2, 3, dtype=torch.long))


# --- term and solver compatibility -----------------------------------------------------------


def test_term_parameters_in_float64_with_a_float32_state_are_incompatible():
    term = nct.ODETerm(torch.nn.Linear(3, 3).double())
    with pytest.raises(
        nct.IncompatibleTermError, match=r"term tensor `f.weight` has dtype torch.float64 but `y0` has torch.float32"
    ):
        solve(term=term)


def test_term_buffers_in_another_dtype_are_incompatible():
    module = torch.nn.Module()
    module.register_buffer("rate", torch.ones(3, dtype=torch.float64))
    module.forward = lambda t, y, args: -module.rate.to(y.dtype) * y
    with pytest.raises(nct.IncompatibleTermError, match=r"term tensor `f.rate`"):
        solve(term=nct.ODETerm(module))


def test_pid_controller_with_a_fixed_step_solver_is_incompatible():
    for solver in (nct.Euler(), nct.Midpoint(), nct.Ralston(), nct.RK4()):
        with pytest.raises(
            nct.IncompatibleTermError, match=rf"solver {type(solver).__name__} has no error estimate.*ConstantStep"
        ):
            solve(solver=solver, controller=nct.PIDController())


def test_the_default_controller_with_a_fixed_step_solver_is_incompatible():
    with pytest.raises(TypeError, match=r"solver RK4 has no error estimate"):
        solve(solver=nct.RK4())


def test_wrong_term_type_names_term():
    with pytest.raises(TypeError, match=r"`term` must be an AbstractTerm; got function"):
        nct.solve(decay, Y0, T)


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("solver", "tsit5", "AbstractSolver or an AbstractRunner; got 'tsit5'"),
        ("controller", 0.1, "AbstractController; got 0.1"),
        ("gradient", None, "AbstractGradient; got None"),
    ],
)
def test_wrong_solver_controller_or_gradient_type_names_the_argument(name, value, expected):
    with pytest.raises(TypeError, match=rf"`{name}` must be an {expected}"):
        solve(**{name: value})


def test_odeterm_of_a_non_callable_is_rejected():
    with pytest.raises(TypeError, match=r"`f` must be callable as f\(t, y, args\); got 3"):
        nct.ODETerm(3)


# --- solve options ---------------------------------------------------------------------------


@pytest.mark.parametrize("max_steps", [0, -5, 10.0, True, "100"])
def test_non_positive_or_non_int_max_steps_is_rejected(max_steps):
    with pytest.raises(nct.InvalidInputError, match=r"`max_steps` must be a positive int; got"):
        solve(max_steps=max_steps)


@pytest.mark.parametrize("dt0", [0.0, -0.1, float("inf"), float("nan"), "0.1"])
def test_bad_dt0_is_rejected(dt0):
    with pytest.raises(nct.InvalidInputError, match=r"`dt0` must be None or a positive finite number; got"):
        solve(dt0=dt0)


@pytest.mark.parametrize("dt", [0, 0.0, -1.0, float("nan"), float("inf")])
def test_constant_step_needs_a_positive_finite_dt(dt):
    with pytest.raises(nct.InvalidInputError, match=r"`dt` must be a positive finite number; got"):
        nct.ConstantStep(dt)


@pytest.mark.parametrize(("name", "value"), [("rtol", -1), ("atol", -1e-6), ("atol", float("nan")), ("dt_min", -1.0)])
def test_pid_controller_rejects_negative_or_non_finite_tolerances(name, value):
    with pytest.raises(nct.InvalidInputError, match=rf"`{name}` must be a finite number >= 0; got"):
        nct.PIDController(**{name: value})


def test_pid_controller_rejects_zero_rtol_and_atol():
    with pytest.raises(nct.InvalidInputError, match=r"`rtol` and `atol` cannot both be 0"):
        nct.PIDController(rtol=0, atol=0)


def test_pid_controller_rejects_dt_max_below_dt_min():
    with pytest.raises(nct.InvalidInputError, match=r"`dt_max` must exceed `dt_min` \(1.0\); got 0.5"):
        nct.PIDController(dt_min=1.0, dt_max=0.5)


def test_pid_controller_rejects_a_safety_factor_outside_0_1():
    with pytest.raises(nct.InvalidInputError, match=r"`safety` must be in \(0, 1\]; got 1.5"):
        nct.PIDController(safety=1.5)


def test_pid_controller_rejects_step_factor_bounds_that_do_not_straddle_1():
    with pytest.raises(nct.InvalidInputError, match=r"`factor_min` < 1 < `factor_max`"):
        nct.PIDController(factor_min=2.0)
    with pytest.raises(nct.InvalidInputError, match=r"`factor_min` < 1 < `factor_max`"):
        nct.PIDController(factor_max=0.5)


def test_pid_controller_rejects_coefficients_that_ignore_the_error():
    with pytest.raises(nct.InvalidInputError, match=r"`pcoeff \+ icoeff \+ dcoeff` must be positive"):
        nct.PIDController(icoeff=0.0)


def test_backprop_rejects_a_non_positive_checkpoint_interval():
    with pytest.raises(nct.InvalidInputError, match=r"`checkpoint_every` must be None or a positive int; got 0"):
        nct.Backprop(checkpoint_every=0)


# --- failures and dense-output queries -------------------------------------------------------


def test_solve_failed_names_the_sample_its_time_and_the_fix():
    rates = torch.tensor([[1.0], [400.0]])
    term = nct.ODETerm(lambda t, y, args: -args * y)
    with pytest.raises(nct.SolveFailed) as info:
        nct.solve(
            term, torch.ones(2, 1), T, args=rates, controller=nct.PIDController(rtol=1e-8, atol=1e-10), max_steps=20
        )
    message = str(info.value)
    assert "sample 1: MAX_STEPS" in message and "sample 0" not in message
    assert "raise max_steps (20)" in message and "throw=False" in message
    assert info.value.solution.status.tolist() == [nct.Status.SUCCESS, nct.Status.MAX_STEPS]


def test_evaluate_without_dense_output_is_rejected():
    with pytest.raises(nct.InvalidInputError, match=r"Solution.evaluate needs a solve with dense=True"):
        solve().evaluate(torch.tensor([0.5, 0.5]))
    with pytest.raises(nct.InvalidInputError, match=r"Solution.derivative needs a solve with dense=True"):
        solve().derivative(torch.tensor([0.5, 0.5]))


def test_evaluate_outside_the_solved_interval_names_sample_and_time():
    sol = solve(dense=True)
    with pytest.raises(
        nct.InvalidInputError,
        match=r"`t` must lie inside each sample's solved interval; sample 1 asks t\[1, 0\] = 1.5, outside \[0, 1\]",
    ):
        sol.evaluate(torch.tensor([0.5, 1.5]))
    with pytest.raises(nct.InvalidInputError, match=r"sample 0 asks t\[0, 1\] = -0.1"):
        sol.evaluate(torch.tensor([[0.5, -0.1], [0.2, 0.3]]))


def test_evaluate_at_nan_is_rejected():
    sol = solve(dense=True)
    with pytest.raises(nct.InvalidInputError, match=r"sample 1 asks t\[1, 0\] = nan"):
        sol.evaluate(torch.tensor([0.5, float("nan")]))


def test_evaluate_with_the_wrong_batch_size_is_rejected():
    sol = solve(dense=True)
    with pytest.raises(nct.InvalidInputError, match=r"`t` must be \[B\] or \[B, K\] with B = 2; got \(3,\)"):
        sol.evaluate(torch.tensor([0.5, 0.5, 0.5]))
    with pytest.raises(nct.InvalidInputError, match=r"`t` must be \[B\] or \[B, K\] with B = 2; got \(\)"):
        sol.evaluate(torch.tensor(0.5))


def test_y0_with_an_empty_state_is_rejected():
    with pytest.raises(
        nct.InvalidInputError,
        match=r"`y0` must have shape \[B, \*state\] with B >= 1 and a non-empty state; got \(2, 0\)",
    ):
        solve(y0=torch.ones(2, 0))


# --- the vector field's output ---------------------------------------------------------------


class _BareDrift(nct.AbstractDriftTerm):
    """A term written against the abstract interface, with no output check of its own."""

    def __init__(self, f):
        super().__init__()
        self.f = f

    def vector_field(self, t, y, args):
        return self.f(t, y, args)


@pytest.mark.parametrize(
    ("solver", "controller"), [(nct.Tsit5(), nct.PIDController()), (nct.RK4(), nct.ConstantStep(0.1))]
)
@pytest.mark.parametrize(
    ("convert", "what"),
    [(lambda v: v.double(), "dtype torch.float64"), (lambda v: v.long(), "dtype torch.int64")],
)
def test_a_field_of_another_dtype_is_named_instead_of_promoting_or_failing_in_torch(solver, controller, convert, what):
    term = nct.ODETerm(lambda t, y, args: convert(-y))
    with pytest.raises(nct.IncompatibleTermError, match=rf"ODETerm must return .*dtype torch.float32.*got .*{what}"):
        nct.solve(term, Y0, T, solver=solver, controller=controller)


def test_a_field_on_another_device_is_named():
    term = nct.ODETerm(lambda t, y, args: (-y).to("meta"))
    with pytest.raises(nct.IncompatibleTermError, match=r"ODETerm must return .* on cpu .*on meta"):
        solve(term=term)


def test_a_control_terms_matrix_of_another_dtype_is_named():
    path = nct.LinearPath(torch.randn(2, 4, 3), torch.linspace(0, 1, 4))
    term = nct.ControlTerm(lambda t, z, args: torch.ones(*z.shape, 3, dtype=torch.float64), path)
    with pytest.raises(nct.IncompatibleTermError, match=r"ControlTerm must return a tensor of shape \(2, 3, 3\)"):
        nct.solve(term, Y0, torch.linspace(0, 1, 4))


@pytest.mark.parametrize(
    ("solver", "controller"), [(nct.Tsit5(), nct.PIDController()), (nct.RK4(), nct.ConstantStep(0.1))]
)
def test_a_custom_term_that_promotes_the_state_fails_at_its_first_step(solver, controller):
    term = _BareDrift(lambda t, y, args: -y.double())
    with pytest.raises(nct.IncompatibleTermError, match=r"a step of _BareDrift turned a state of .*float32.*float64"):
        nct.solve(term, Y0, T, solver=solver, controller=controller)


@pytest.mark.parametrize(
    ("solver", "controller"), [(nct.Tsit5(), nct.PIDController()), (nct.RK4(), nct.ConstantStep(0.1))]
)
def test_a_field_that_changes_y_in_place_is_refused_and_y0_is_untouched(solver, controller):
    y0 = torch.ones(2, 3)
    term = nct.ODETerm(lambda t, y, args: y.mul_(0.5))
    with pytest.raises(nct.IncompatibleTermError, match=r"ODETerm changed its input `y` in place"):
        nct.solve(term, y0, T, solver=solver, controller=controller)
    assert torch.equal(y0, torch.ones(2, 3))


def test_the_solution_never_aliases_y0():
    y0 = torch.ones(2, 3)
    sol = solve(y0=y0)
    sol.ys[:, 0].zero_()
    assert torch.equal(y0, torch.ones(2, 3))

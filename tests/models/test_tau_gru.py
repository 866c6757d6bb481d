"""τ-GRU as a delay equation: against the discrete τ-GRU recursion, a GRU-like ODE solved by
SciPy, the exact solution of y' = -y(t - 1) and torchdde."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

import neuralct as nct
from neuralct.data import Series, collate
from neuralct.data.series import IrregularBatch
from neuralct.errors import InvalidInputError
from neuralct.models.base import SolveOptions
from neuralct.models.tau_gru import TauGRU, tau_gru_recursion

F64 = torch.float64
NAN = float("nan")
H = 4


def irregular_batch() -> IrregularBatch:
    """Three samples with their own times, a missing value and padding."""
    return collate(
        [
            Series(torch.tensor([0.0, 0.4, 1.3, 2.0, 2.2]), torch.randn(5, 2)),
            Series(torch.tensor([0.2, 1.1]), torch.tensor([[-0.7, 0.2], [1.5, -1.0]])),
            Series(torch.tensor([-0.5, 0.1, 0.9]), torch.tensor([[0.0, 1.0], [NAN, -0.4], [2.0, 0.1]])),
        ]
    ).to(dtype=F64)


def model(delays=(0.7,), **options) -> TauGRU:
    return TauGRU(2, H, 3, delays=delays, **options).double()


def solve_states(net: TauGRU, batch: IrregularBatch, options: SolveOptions | None = None) -> torch.Tensor:
    """`[B, T + 1, H]` the states at the model's save times."""
    options = options or net.default_solve_options()
    return nct.solve(net.term(batch), net.initial_state(batch), net.save_times(batch), **options.solve_kwargs()).ys


def fixed_step(solver, dt: float) -> SolveOptions:
    return SolveOptions(nct.MethodOfSteps(solver), nct.ConstantStep(dt))


def tight() -> SolveOptions:
    return SolveOptions(nct.MethodOfSteps(nct.Tsit5()), nct.PIDController(rtol=1e-11, atol=1e-12), max_steps=20000)


# ---------------------------------------------------------------- the discrete τ-GRU


@pytest.mark.parametrize("substeps", [1, 2])
def test_euler_steps_dividing_the_delays_equal_the_discrete_tau_gru_recursion(substeps):
    # Observations every 0.5, Euler steps of dt = 0.5 / substeps, delays 3 dt and 2 dt: the
    # recursion's gate is g = dt * sigmoid(W3 h + U3 x), and each observation is read by the
    # substeps of the gap that ends at it.
    dt = 0.5 / substeps
    net = model(delays=(3 * dt, 2 * dt), first_gap=0.5)
    x = torch.randn(2, 10, 2, dtype=F64)
    batch = IrregularBatch.from_padded(torch.arange(10, dtype=F64) * 0.5, x)
    controller = nct.KnotToKnot() if substeps == 1 else nct.ConstantStep(dt)
    ours = solve_states(net, batch, SolveOptions(nct.MethodOfSteps(nct.Euler()), controller))
    reference = tau_gru_recursion(net.cell, x.repeat_interleave(substeps, dim=1), [3, 2], dt)[:, ::substeps]
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-12)


def test_on_a_unit_grid_the_default_numerics_are_the_papers_cell_with_a_sigmoid_gate():
    net = model(delays=(2.0,))
    x = torch.randn(3, 6, 2, dtype=F64)
    batch = IrregularBatch.from_padded(torch.arange(6, dtype=F64), x)
    cell, h, states = net.cell, torch.zeros(3, H, dtype=F64), [torch.zeros(3, H, dtype=F64)]
    w1, w3, w4 = net.cell.state_map.weight.split(H)
    u1, u3, u4, u2 = net.cell.input_map.weight.split(H)
    b1, b3, b4, b2 = net.cell.input_map.bias.split(H)
    for n in range(6):
        lagged = states[n - 2] if n >= 2 else torch.zeros_like(h)
        u, g = torch.tanh(h @ w1.T + x[:, n] @ u1.T + b1), torch.sigmoid(h @ w3.T + x[:, n] @ u3.T + b3)
        a = torch.sigmoid(h @ w4.T + x[:, n] @ u4.T + b4)
        z = torch.tanh(lagged @ cell.delayed_map[0].T + x[:, n] @ u2.T + b2)
        h = (1 - g) * h + g * (u + a * z)
        states.append(h)
    torch.testing.assert_close(net(batch), net.decoder(states[-1]), rtol=0, atol=1e-12)


def test_a_zero_delay_weight_leaves_the_gru_like_ode_solved_by_scipy():
    net = model()
    with torch.no_grad():
        net.cell.input_map.bias[2 * H : 3 * H] = -math.inf  # a = sigmoid(-inf) = 0
    batch = irregular_batch()
    ours = solve_states(net, batch, tight())
    w1, w3, _ = net.cell.state_map.weight.detach().split(H)
    (u1, u3, _, _), (b1, b3, _, _) = (
        net.cell.input_map.weight.detach().split(H),
        net.cell.input_map.bias.detach().split(H),
    )
    for b in range(batch.batch_size):
        times, x = batch.times[b].tolist(), batch.with_nan()[b]
        edges, h = [times[0] - net.first_gap] + times, np.zeros(H)
        for k in range(int(batch.lengths[b])):
            x_k = x[: k + 1].nan_to_num(0).numpy()[(~torch.isnan(x[: k + 1])).cumsum(0).argmax(0), [0, 1]]
            u_in, g_in = u1.numpy() @ x_k + b1.numpy(), u3.numpy() @ x_k + b3.numpy()

            def rhs(t, y, u_in=u_in, g_in=g_in):
                gate = 1 / (1 + np.exp(-(w3.numpy() @ y + g_in)))
                return gate * (np.tanh(w1.numpy() @ y + u_in) - y)

            h = solve_ivp(rhs, (edges[k], edges[k + 1]), h, method="DOP853", rtol=1e-12, atol=1e-13).y[:, -1]
            np.testing.assert_allclose(ours[b, k + 1].detach().numpy(), h, atol=1e-9)


# ---------------------------------------------------------------- the delay machinery


def test_method_of_steps_reproduces_the_exact_solution_of_negative_feedback_on_zero_to_three():
    # y' = -y(t - 1), y = 1 on [-1, 0]: 1 - t, then + (t - 1)^2 / 2, then - (t - 2)^3 / 6.
    term = nct.DelayTerm(lambda t, y, yd, args: -yd[:, 0], [1.0], lambda t: torch.ones(t.shape[0], 1, dtype=F64))
    t = torch.linspace(0, 3, 31, dtype=F64)
    exact = 1 - t + (t - 1).clamp_min(0) ** 2 / 2 - (t - 2).clamp_min(0) ** 3 / 6
    rk4 = nct.solve(
        term, torch.ones(1, 1, dtype=F64), t, solver=nct.MethodOfSteps(nct.RK4()), controller=nct.ConstantStep(0.1)
    )
    tsit5 = nct.solve(term, torch.ones(1, 1, dtype=F64), t, solver=nct.MethodOfSteps(), controller=tight().controller)
    assert (rk4.ys[0, :, 0] - exact).abs().max() < 1e-13  # RK4 is exact on cubic pieces
    assert (tsit5.ys[0, :, 0] - exact).abs().max() < 1e-10


@pytest.mark.filterwarnings("ignore:b_err_list is only zeros")
def test_agrees_with_torchdde_on_a_small_tau_gru():
    torchdde = pytest.importorskip("torchdde")
    net = model(delays=(0.5,))
    x = torch.tensor([[0.8, -0.3]], dtype=F64)
    batch = IrregularBatch.from_padded(torch.linspace(0, 3, 13, dtype=F64), x.expand(13, -1)[None])  # constant input
    ours = solve_states(net, batch, tight())[0]
    ts = net.save_times(batch)[0]

    def field(t, y, args, *, history):
        return net.cell(x, y, history[0][:, None])

    with torch.no_grad():
        peer = torchdde.integrate(
            field,
            torchdde.RK4(),
            ts[0],
            ts[-1],
            ts,
            lambda s: torch.zeros(1, H, dtype=F64),
            None,
            dt0=torch.tensor(0.005, dtype=F64),
            delays=torch.tensor([0.5], dtype=F64),
            discretize_then_optimize=True,
            max_steps=2000,
        )[0]
    torch.testing.assert_close(ours.detach(), peer, rtol=0, atol=1e-7)


def fixed_step_errors(net: TauGRU, solvers, steps=(0.05, 0.025)) -> dict[str, list[float]]:
    """Max errors of each fixed-step solver at each step on `irregular_batch`, against `tight()`."""
    batch = irregular_batch()
    with torch.no_grad():
        reference = solve_states(net, batch, tight())
        return {
            type(solver).__name__: [
                float((solve_states(net, batch, fixed_step(solver, dt)) - reference).abs().max()) for dt in steps
            ]
            for solver in solvers
        }


def test_on_irregular_grids_the_delayed_state_comes_from_dense_history_and_higher_order_is_more_accurate():
    # Delays 0.37 and 0.9 fall between observation times and between steps: every delayed
    # value is interpolated from the history's dense output.
    errors = fixed_step_errors(model(delays=(0.37, 0.9)), (nct.Euler(), nct.Midpoint(), nct.RK4()))
    assert errors["Euler"][1] > errors["Midpoint"][1] > errors["RK4"][1]
    for name, order in (("Euler", 1), ("Midpoint", 2), ("RK4", 4)):
        assert abs(math.log2(errors[name][0] / errors[name][1]) - order) < 0.35, errors


@pytest.mark.parametrize("seed", [1, 2, 3, 4])  # seed 0 is the test above's
def test_rk4_keeps_its_fourth_order_for_other_weights(seed):
    # The held input jumps at every observation; the delays carry each jump into a derivative
    # jump at the observation time plus 0.37, 0.9, 0.74, 1.27, ..., which steps must land on
    # for RK4 to keep its order (stepping across them, it converged at order 2.0 for every seed).
    torch.manual_seed(seed)
    errors = fixed_step_errors(model(delays=(0.37, 0.9)), (nct.RK4(),))["RK4"]
    assert abs(math.log2(errors[0] / errors[1]) - 4) < 0.35, errors


# ---------------------------------------------------------------- per sample, gradients, errors


@pytest.mark.parametrize("options, atol", [(None, 1e-12), (tight(), 1e-9)], ids=["knot-to-knot-euler", "tsit5-pid"])
def test_batch_composition_does_not_change_a_sample(options, atol):
    # Matrix products round differently with the batch size; adaptive step control turns such
    # 1e-16 differences into other accept/reject decisions, so the adaptive solve agrees to
    # about its tolerance (rtol 1e-11), the fixed-step one to rounding.
    net = model(delays=(0.7, 0.25))
    batch = irregular_batch()
    together = net(batch, options)
    for b in range(batch.batch_size):
        torch.testing.assert_close(net(batch.select([b]), options)[0], together[b], rtol=0, atol=atol)


def test_gradients_reach_every_parameter_including_the_delay_weights():
    net = model(delays=(0.7, 0.25))
    net(irregular_batch()).square().sum().backward()
    for name, parameter in net.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    delay_weight_rows = net.cell.state_map.weight.grad[2 * H :]
    assert (delay_weight_rows.abs().sum(dim=1) > 0).all()


@pytest.mark.parametrize(
    "options, name",
    [
        ({"delays": ()}, "delays"),
        ({"delays": (0.5, 0.0)}, "delays"),
        ({"delays": 1.0}, "delays"),
        ({"delays": (math.inf,)}, "delays"),
        ({"first_gap": -1.0}, "first_gap"),
    ],
)
def test_bad_options_raise_errors_naming_them(options, name):
    with pytest.raises(InvalidInputError, match=f"`{name}`"):
        TauGRU(2, 4, 3, **options)


@pytest.mark.parametrize("sizes, name", [((0, 4, 3), "channels"), ((2, 4.0, 3), "hidden"), ((2, 4, -1), "outputs")])
def test_bad_sizes_raise_errors_naming_them(sizes, name):
    with pytest.raises(InvalidInputError, match=f"`{name}`"):
        TauGRU(*sizes)

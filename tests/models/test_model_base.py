"""The model interface: SolveOptions, the jump-model loop, KnotToKnot and the readout helpers."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

import neuralct as nct
from neuralct.data import Series, collate
from neuralct.errors import InvalidInputError
from neuralct.models.base import (
    AbstractContinuousModel,
    AbstractJumpModel,
    SolveOptions,
    held_input,
    last_observed,
)


def _batch() -> nct.data.IrregularBatch:
    return collate(
        [
            Series(
                torch.tensor([0.0, 0.5, 1.7, 2.0]),
                torch.tensor([[1.0], [2.0], [float("nan")], [0.5]]),
                target=torch.tensor(0),
            ),
            Series(torch.tensor([0.2, 1.0]), torch.tensor([[-1.0], [3.0]]), target=torch.tensor(1)),
        ]
    )


class _DecayJump(AbstractJumpModel):
    """h' = -h between observations; h <- h + x (observed channels) at each observation."""

    def initial_state(self, batch):
        return torch.zeros(batch.batch_size, 1, dtype=batch.values.dtype)

    @property
    def flow(self):
        return lambda t, h, args: -h

    def update(self, h, batch, k):
        return h + batch.values[:, k]

    def readout(self, h, batch):
        return h

    def default_solve_options(self):
        return SolveOptions(nct.Tsit5(), nct.PIDController(rtol=1e-10, atol=1e-12))


def _decay_jump_exact(series: list[tuple[list[float], list[float]]]) -> list[float]:
    out = []
    for times, values in series:
        h = 0.0
        for k, (t, x) in enumerate(zip(times, values)):
            if k:
                h *= torch.exp(torch.tensor(-(t - times[k - 1]), dtype=torch.float64)).item()
            h += 0.0 if x != x else x
        out.append(h)
    return out


def test_jump_model_alternates_exact_flows_and_updates_and_ignores_padding() -> None:
    batch = _batch().to(dtype=torch.float64)
    output = _DecayJump().run(batch)
    exact = _decay_jump_exact([([0.0, 0.5, 1.7, 2.0], [1.0, 2.0, float("nan"), 0.5]), ([0.2, 1.0], [-1.0, 3.0])])
    torch.testing.assert_close(output.predictions[:, 0], torch.tensor(exact, dtype=torch.float64), rtol=1e-8, atol=1e-8)
    # Evaluations are counted over real gaps only: the padded gap of sample 1 adds nothing.
    alone = _DecayJump().run(batch.select([1]))
    assert output.stats.vf_evals[1] == alone.stats.vf_evals[0]
    assert output.stats.vf_evals[0] > 0


def test_jump_model_without_flow_runs_without_options() -> None:
    class Counter(_DecayJump):
        @property
        def flow(self):
            return None

        def default_solve_options(self):
            return None

    output = Counter().run(_batch())
    torch.testing.assert_close(output.predictions[:, 0], torch.tensor([3.5, 2.0]))
    assert int(output.stats.vf_evals.sum()) == 0


class _LeakyIntegrator(AbstractContinuousModel):
    """h' = x(t) - h with x the held input; read out at the last observation."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def initial_state(self, batch):
        return torch.zeros(batch.batch_size, 1, dtype=batch.values.dtype)

    def term(self, batch):
        path = held_input(batch)
        return nct.ODETerm(lambda t, h, args: self.scale * path.evaluate(t) - h, inputs=path)

    def readout(self, solution, batch):
        return last_observed(solution.ys, batch)

    def default_solve_options(self):
        return SolveOptions(nct.Euler(), nct.KnotToKnot())


def test_continuous_model_with_knot_to_knot_euler_is_the_discrete_rnn() -> None:
    batch = _batch().to(dtype=torch.float64)
    output = _LeakyIntegrator().run(batch)
    # Euler per gap: h_k = h_{k-1} + dt_k (x_k - h_{k-1}), x_k held over (t_{k-1}, t_k] (NaN carried forward).
    expected = []
    for times, values in (([0.0, 0.5, 1.7, 2.0], [1.0, 2.0, 2.0, 0.5]), ([0.2, 1.0], [-1.0, 3.0])):
        h = 0.0
        for k in range(1, len(times)):
            h += (times[k] - times[k - 1]) * (values[k] - h)
        expected.append(h)
    torch.testing.assert_close(output.predictions[:, 0], torch.tensor(expected, dtype=torch.float64))
    assert output.stats.steps.tolist() == [3, 1]  # sample 1 stops at its last real time, not in its padding


def test_models_swap_solvers_through_options() -> None:
    batch = _batch().to(dtype=torch.float64)
    model = _LeakyIntegrator()
    tight = model.run(batch, SolveOptions(nct.Dopri5(), nct.PIDController(rtol=1e-10, atol=1e-12))).predictions
    exact = []
    grids = (batch.times[0].tolist(), batch.times[1, :2].tolist())  # float32 knots, as the model sees them
    for times, values in zip(grids, ([1.0, 2.0, 2.0, 0.5], [-1.0, 3.0])):
        h = 0.0
        for k in range(1, len(times)):
            decay = torch.exp(torch.tensor(-(times[k] - times[k - 1]), dtype=torch.float64)).item()
            h = values[k] + (h - values[k]) * decay
        exact.append(h)
    torch.testing.assert_close(tight[:, 0], torch.tensor(exact, dtype=torch.float64), rtol=1e-8, atol=1e-8)
    tight.sum().backward()
    assert model.scale.grad is not None


def test_knot_to_knot_takes_one_step_per_gap_with_per_sample_grids() -> None:
    t = torch.tensor([[0.0, 0.3, 1.0, 1.1], [0.0, 2.0, 2.5, 4.0]], dtype=torch.float64)
    sol = nct.solve(
        nct.ODETerm(lambda t, y, a: -y),
        torch.ones(2, 1, dtype=torch.float64),
        t,
        solver=nct.Euler(),
        controller=nct.KnotToKnot(),
    )
    expected = torch.cumprod(torch.cat([torch.ones(2, 1, dtype=torch.float64), 1 - t.diff(dim=1)], dim=1), dim=1)
    torch.testing.assert_close(sol.ys[..., 0], expected)
    assert sol.stats.steps.tolist() == [3, 3]


def test_last_observed_picks_each_samples_last_real_position() -> None:
    batch = _batch()
    ys: Tensor = torch.arange(2 * 4 * 3, dtype=torch.float32).view(2, 4, 3)
    torch.testing.assert_close(last_observed(ys, batch), torch.stack([ys[0, 3], ys[1, 1]]))


def test_solve_options_reject_wrong_types_by_name() -> None:
    with pytest.raises(InvalidInputError, match="`solver`"):
        SolveOptions("tsit5", nct.KnotToKnot())  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="`max_steps`"):
        SolveOptions(nct.Euler(), nct.KnotToKnot(), max_steps=0)
    with pytest.raises(InvalidInputError, match="needs `options`"):

        class NoOptions(_DecayJump):
            def default_solve_options(self):
                return None

        NoOptions().run(_batch())


def test_an_ode_term_with_a_held_input_lands_on_every_knot_under_an_adaptive_solver() -> None:
    batch = _batch().to(dtype=torch.float64)
    path = held_input(batch)
    field = lambda t, h, args: path.evaluate(t) - h  # noqa: E731
    options = dict(solver=nct.Tsit5(), controller=nct.PIDController(rtol=1e-10, atol=1e-12))
    with_knots = nct.solve(
        nct.ODETerm(field, inputs=path), torch.zeros(2, 1, dtype=torch.float64), batch.times, **options
    )
    exact = _LeakyIntegrator().run(batch, SolveOptions(nct.Dopri5(), nct.PIDController(rtol=1e-10, atol=1e-12)))
    torch.testing.assert_close(last_observed(with_knots.ys, batch), exact.predictions, rtol=1e-8, atol=1e-9)
    # The knots are the path's jump times; a DelayTerm merges them with its breakpoints.
    delay = nct.DelayTerm(lambda t, y, yd, args: -yd[:, 0], delays=[0.7], history=torch.zeros(2, 1), inputs=path)
    merged = delay.jump_times(batch.times)
    for row, knots in zip(merged, path.jump_times()):
        finite = row[row.isfinite()]
        assert (finite.diff() > 0).all()
        assert set(knots.tolist()) <= set(finite.tolist()) | {float("inf")}


def test_solve_options_describe_the_solver_and_its_inner_method() -> None:
    assert SolveOptions(nct.MethodOfSteps(nct.RK4()), nct.KnotToKnot()).describe() == "MethodOfSteps(RK4) + KnotToKnot"
    assert SolveOptions(nct.Tsit5(), nct.PIDController(rtol=1e-3)).describe() == "Tsit5 + PIDController"

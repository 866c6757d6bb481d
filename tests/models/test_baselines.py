"""Irregular-series baselines: GRU-D, ODE-RNN and GRU-Δt against torch's GRUCell, SciPy and the paper's equations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp
from torch import nn

from neuralct.controllers.constant import ConstantStep
from neuralct.controllers.pid import PIDController
from neuralct.data.series import IrregularBatch, Series, collate
from neuralct.errors import InvalidInputError
from neuralct.models.base import SolveOptions
from neuralct.models.baselines.gru_d import GRUD
from neuralct.models.baselines.gru_dt import GRUDelta
from neuralct.models.baselines.ode_rnn import ODERNN
from neuralct.solvers.rk import Dopri5, Tsit5

DTYPE = torch.float64
C, H, OUT = 3, 5, 2  # channels, hidden size, outputs
TIGHT = SolveOptions(Tsit5(), PIDController(rtol=1e-9, atol=1e-11))
MODELS = {
    "gru_d": lambda: GRUD(C, H, OUT, means=[0.3, -0.2, 0.1]),
    "ode_rnn": lambda: ODERNN(C, H, OUT, flow_width=8),
    "gru_dt": lambda: GRUDelta(C, H, OUT),
}


def _series(length: int, start: float, observed: float = 0.7) -> Series:
    times = start + torch.cumsum(0.05 + 0.3 * torch.rand(length, dtype=DTYPE), 0)
    mask = torch.rand(length, C) < observed
    mask[0, 0] = True  # every sample observes something
    return Series(times, torch.randn(length, C, dtype=DTYPE), mask)


def _batch(observed: float = 0.7) -> IrregularBatch:
    """Three samples of lengths 7, 4 and 2 with their own times and (by default) missing values."""
    return collate([_series(7, 0.0, observed), _series(4, 0.5, observed), _series(2, -1.0, observed)])


def _model(name: str) -> nn.Module:
    torch.manual_seed(1)
    return MODELS[name]().to(DTYPE)


def _copy_cell(cell: nn.GRUCell) -> nn.GRUCell:
    twin = nn.GRUCell(cell.input_size, cell.hidden_size).to(DTYPE)
    twin.load_state_dict(cell.state_dict())
    return twin


def _rows(batch: IrregularBatch, b: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sample b's real times `[L]`, values `[L, C]` and mask `[L, C]` (as 0/1)."""
    length = int(batch.lengths[b])
    return batch.times[b, :length], batch.values[b, :length], batch.mask[b, :length].to(DTYPE)


def _gru_d_by_the_paper(model: GRUD, batch: IrregularBatch, b: int) -> torch.Tensor:
    """Che et al.'s equations for one sample, written out with the time since last observation
    $\\delta_k^d = s_k - s_{k-1} + \\delta_{k-1}^d$ if $m_{k-1}^d = 0$ else $s_k - s_{k-1}$, $\\delta_0 = 0$,
    and the diagonal input decay as the matrix `diag(w)`."""
    times, values, mask = _rows(batch, b)
    cell, w_x = _copy_cell(model.cell), torch.diag(model.input_decay_weight)
    h, last, delta = torch.zeros(1, H, dtype=DTYPE), model.means.clone(), torch.zeros(C, dtype=DTYPE)
    for k in range(len(times)):
        if k > 0:
            delta = torch.stack([times[k] - times[k - 1] + (delta[d] if mask[k - 1, d] == 0 else 0) for d in range(C)])
        gamma_x = torch.exp(-torch.relu(w_x @ delta + model.input_decay_bias))
        gamma_h = torch.exp(-torch.relu(model.hidden_decay.weight @ delta + model.hidden_decay.bias))
        x_hat = mask[k] * values[k] + (1 - mask[k]) * (gamma_x * last + (1 - gamma_x) * model.means)
        h = cell(torch.cat([x_hat, mask[k]]).unsqueeze(0), gamma_h * h)
        last = torch.where(mask[k] > 0, values[k], last)
    return model.head(h)[0]


def _gru_loop(
    cell: nn.GRUCell, head: nn.Linear, inputs: torch.Tensor, skip: torch.Tensor | None = None
) -> torch.Tensor:
    """A plain torch GRU over `inputs` `[L, I]`, keeping the state where `skip` is True."""
    h = torch.zeros(1, cell.hidden_size, dtype=DTYPE)
    for k in range(inputs.shape[0]):
        if skip is None or not bool(skip[k]):
            h = cell(inputs[k : k + 1], h)
    return head(h)[0]


def test_gru_d_with_everything_observed_equals_a_torch_gru_on_the_decayed_state_and_a_mask_of_ones() -> None:
    batch, model = _batch(observed=1.0), _model("gru_d")
    assert bool(batch.mask.all(-1)[batch.valid].all())
    cell = _copy_cell(model.cell)
    for b in range(batch.batch_size):
        times, values, _ = _rows(batch, b)
        h = torch.zeros(1, H, dtype=DTYPE)
        for k in range(len(times)):
            gap = (times[k] - times[k - 1]) if k > 0 else torch.zeros((), dtype=DTYPE)
            gamma_h = torch.exp(-torch.relu(model.hidden_decay.weight.sum(1) * gap + model.hidden_decay.bias))
            h = cell(torch.cat([values[k], torch.ones(C, dtype=DTYPE)]).unsqueeze(0), h * gamma_h)
        torch.testing.assert_close(model(batch)[b], model.head(h)[0], atol=1e-12, rtol=0)


def test_gru_d_with_missing_values_follows_the_paper_equations() -> None:
    batch, model = _batch(observed=0.5), _model("gru_d")
    with torch.no_grad():  # decay rates of both signs, and large enough to matter
        model.input_decay_weight.copy_(torch.tensor([2.0, -0.5, 0.7]))
        model.input_decay_bias.copy_(torch.tensor([-0.1, 0.3, 0.0]))
    assert not bool(batch.mask[batch.valid].all())
    expected = torch.stack([_gru_d_by_the_paper(model, batch, b) for b in range(batch.batch_size)])
    torch.testing.assert_close(model(batch), expected, atol=1e-12, rtol=0)


def test_gru_d_means_are_the_observed_means_and_imputation_tends_to_them_as_the_gap_grows() -> None:
    batch, model = _batch(observed=0.6), _model("gru_d").requires_grad_(False)
    means = model.fit_means(batch).clone()
    np.testing.assert_allclose(means.numpy(), np.nanmean(batch.with_nan().flatten(0, 1).numpy(), axis=0), atol=1e-12)
    model.input_decay_weight.copy_(torch.tensor([0.5, 1.0, 2.0]))  # positive rates: the decay vanishes
    last, unseen = torch.tensor([[4.0, -3.0, 10.0]], dtype=DTYPE), torch.zeros(1, C, dtype=DTYPE)
    distances = []
    for delta in (0.0, 1.0, 10.0, 100.0, 1e4):
        gamma_x, _ = model.decays(torch.full((1, C), delta, dtype=DTYPE))
        distances.append(float((model.impute(torch.zeros_like(last), unseen, last, gamma_x) - means).abs().max()))
    assert all(later <= earlier for earlier, later in zip(distances, distances[1:]))
    assert distances[-1] < 1e-12 < distances[0]


def test_gru_d_decays_lie_in_zero_to_one_and_equal_one_without_a_gap_when_biases_are_negative() -> None:
    model = _model("gru_d")
    with torch.no_grad():
        model.input_decay_weight.copy_(torch.tensor([1.5, -1.0, 0.2]))
    gamma_x, gamma_h = model.decays(torch.rand(200, C, dtype=DTYPE) * 20)
    for gamma in (gamma_x, gamma_h):
        assert bool(((gamma > 0) & (gamma <= 1)).all())
    with torch.no_grad():
        model.input_decay_bias.fill_(-0.5)
        model.hidden_decay.bias.fill_(-0.5)
    for gamma in model.decays(torch.zeros(1, C, dtype=DTYPE)):
        assert bool((gamma == 1).all())


def _zero_field(model: ODERNN) -> ODERNN:
    with torch.no_grad():
        model.field.net[-1].weight.zero_()
        model.field.net[-1].bias.zero_()
    return model


@pytest.mark.parametrize("options", [None, TIGHT], ids=["euler_per_gap", "tsit5"])
def test_ode_rnn_with_a_zero_field_is_a_torch_gru_over_the_observed_positions(options: SolveOptions | None) -> None:
    batch, model = _batch(observed=0.4), _zero_field(_model("ode_rnn"))
    cell = _copy_cell(model.cell)
    for b in range(batch.batch_size):
        _, values, mask = _rows(batch, b)
        expected = _gru_loop(cell, model.head, torch.cat([values, mask], -1), skip=mask.sum(-1) == 0)
        torch.testing.assert_close(model(batch, options)[b], expected, atol=1e-12, rtol=0)


def test_ode_rnn_positions_without_any_observation_leave_the_state_where_the_flow_put_it() -> None:
    model = _model("ode_rnn").requires_grad_(False)
    times = torch.tensor([0.0, 0.4, 0.7, 1.5, 1.6], dtype=DTYPE)
    values = torch.randn(5, C, dtype=DTYPE)
    mask = torch.ones(5, C, dtype=torch.bool)
    mask[2] = mask[3] = False  # two positions see nothing
    with_empty = collate([Series(times, values, mask)])
    without = collate([Series(times[[0, 1, 4]], values[[0, 1, 4]])])
    torch.testing.assert_close(model(with_empty, TIGHT), model(without, TIGHT), atol=1e-8, rtol=0)
    changed = model(collate([Series(times, values, mask | (torch.arange(5) == 2)[:, None])]), TIGHT)
    assert float((changed - model(without, TIGHT)).abs().max()) > 1e-3  # an observation there would matter


def test_ode_rnn_flow_between_observations_matches_scipy() -> None:
    batch, model = _batch(), _model("ode_rnn")
    cell, field = _copy_cell(model.cell), model.field

    def rhs(_: float, y: np.ndarray) -> np.ndarray:
        return field(None, torch.from_numpy(y).unsqueeze(0), None)[0].detach().numpy()

    for b in range(batch.batch_size):
        times, values, mask = _rows(batch, b)
        h = torch.zeros(1, H, dtype=DTYPE)
        for k in range(len(times)):
            if k > 0:
                span = (float(times[k - 1]), float(times[k]))
                flowed = solve_ivp(rhs, span, h[0].detach().numpy(), method="DOP853", rtol=1e-12, atol=1e-12).y[:, -1]
                h = torch.from_numpy(flowed).unsqueeze(0)
            if mask[k].sum() > 0:
                h = cell(torch.cat([values[k], mask[k]]).unsqueeze(0), h)
        torch.testing.assert_close(model(batch, TIGHT)[b], model.head(h)[0], atol=1e-8, rtol=0)


def test_ode_rnn_euler_per_gap_and_tsit5_give_close_answers_and_report_their_cost() -> None:
    batch, model = _batch(), _model("ode_rnn").requires_grad_(False)
    for parameter in model.field.parameters():  # a field strong enough that the flow moves the predictions
        parameter.mul_(2.0)
    euler = model.run(batch)  # default: one Euler step per gap
    fine_euler = model.run(batch, SolveOptions(model.default_solve_options().solver, ConstantStep(1e-3)))
    tsit5 = model.run(batch, SolveOptions(Tsit5(), PIDController(rtol=1e-6, atol=1e-8)))
    dopri5 = model.run(batch, SolveOptions(Dopri5(), PIDController(rtol=1e-6, atol=1e-8)))
    no_flow = _zero_field(model).run(batch, TIGHT)
    assert float((no_flow.predictions - tsit5.predictions).abs().max()) > 2e-2
    torch.testing.assert_close(euler.predictions, tsit5.predictions, atol=1e-2, rtol=0)
    torch.testing.assert_close(fine_euler.predictions, tsit5.predictions, atol=1e-4, rtol=0)
    torch.testing.assert_close(dopri5.predictions, tsit5.predictions, atol=1e-6, rtol=0)
    gaps = batch.lengths - 1
    assert torch.equal(euler.stats.steps, gaps) and torch.equal(euler.stats.rejected, torch.zeros_like(gaps))
    assert bool((tsit5.stats.steps >= gaps).all() and (tsit5.stats.vf_evals > euler.stats.vf_evals).all())
    assert torch.equal(tsit5.stats.accepted + tsit5.stats.rejected, tsit5.stats.steps)


def test_gru_delta_t_is_a_torch_gru_on_values_mask_and_gap() -> None:
    batch, model = _batch(), _model("gru_dt")
    cell = _copy_cell(model.cell)
    for b in range(batch.batch_size):
        times, values, mask = _rows(batch, b)
        gaps = torch.cat([torch.zeros(1, dtype=DTYPE), times.diff()]).unsqueeze(1)
        expected = _gru_loop(cell, model.head, torch.cat([values, mask, gaps], -1))
        torch.testing.assert_close(model(batch)[b], expected, atol=1e-12, rtol=0)


@pytest.mark.parametrize("name", list(MODELS))
def test_a_batch_gives_each_sample_what_it_gets_alone(name: str) -> None:
    batch, model = _batch(), _model(name)
    options = [None, SolveOptions(Tsit5(), PIDController(rtol=1e-5, atol=1e-7))] if name == "ode_rnn" else [None]
    for option in options:
        together = model.run(batch, option)
        for b in range(batch.batch_size):
            alone = model.run(batch.select([b]), option)
            torch.testing.assert_close(together.predictions[b], alone.predictions[0], atol=1e-12, rtol=0)
            assert int(together.stats.vf_evals[b]) == int(alone.stats.vf_evals[0])


@pytest.mark.parametrize("name", list(MODELS))
def test_padding_never_changes_the_result(name: str) -> None:
    batch, model = _batch(), _model(name)
    extra = 3
    garbage = torch.randn(batch.batch_size, extra, C, dtype=DTYPE)
    padded = IrregularBatch.from_padded(
        torch.cat([batch.times, torch.zeros(batch.batch_size, extra, dtype=DTYPE)], 1),
        torch.cat([batch.values, garbage], 1),
        torch.cat([batch.mask, torch.ones(batch.batch_size, extra, C, dtype=torch.bool)], 1),
        batch.lengths,
    )
    torch.testing.assert_close(model(padded), model(batch), atol=1e-12, rtol=0)


@pytest.mark.parametrize("name", ["gru_d", "gru_dt"])
def test_models_without_a_flow_have_no_solve_options_and_cost_no_solve(name: str) -> None:
    model, batch = _model(name), _batch()
    assert model.flow is None and model.default_solve_options() is None
    stats = model.run(batch).stats
    assert all(int(getattr(stats, count).abs().sum()) == 0 for count in ("vf_evals", "steps", "accepted", "rejected"))


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: GRUD(0, H, OUT), "`channels` must be a positive int; got 0"),
        (lambda: GRUD(C, 2.5, OUT), "`hidden` must be a positive int; got 2.5"),
        (lambda: GRUD(C, H, True), "`outputs` must be a positive int; got True"),
        (lambda: GRUD(C, H, OUT, means=[1.0, 2.0]), "`means` must be 3 finite numbers"),
        (lambda: GRUD(C, H, OUT, means=[1.0, float("nan"), 2.0]), "`means` must be 3 finite numbers"),
        (lambda: GRUD(C, H, OUT, means="mean"), "`means` must be 3 finite numbers"),
        (lambda: ODERNN(C, H, OUT, flow_width=0), "`flow_width` must be a positive int; got 0"),
        (lambda: ODERNN(C, H, OUT, flow_depth=-1), "`flow_depth` must be a positive int; got -1"),
        (lambda: ODERNN(C, 0, OUT), "`hidden` must be a positive int; got 0"),
        (lambda: GRUDelta(C, H, "2"), "`outputs` must be a positive int; got '2'"),
    ],
)
def test_bad_constructor_arguments_raise_named_errors(build, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build()


@pytest.mark.parametrize("name", list(MODELS))
def test_a_batch_with_other_channels_is_refused_by_name(name: str) -> None:
    batch = collate([Series(torch.arange(3.0, dtype=DTYPE), torch.randn(3, C + 1, dtype=DTYPE))])
    with pytest.raises(InvalidInputError, match="`batch` must have 3 channels"):
        _model(name)(batch)


@pytest.mark.parametrize("name", list(MODELS))
def test_a_few_adam_steps_fit_a_small_batch(name: str) -> None:
    batch = collate([_series(3 + i % 5, 0.1 * i) for i in range(12)])
    labels = torch.arange(12) % OUT
    model = _model(name)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-2)
    losses = []
    for _ in range(25):
        loss = nn.functional.cross_entropy(model(batch), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.7 * losses[0]


@pytest.mark.parametrize("name", list(MODELS))
def test_float32_models_read_gaps_from_float64_times_far_from_zero(name: str) -> None:
    batch, model = _batch(), _model(name).float()
    values = batch.values.float()
    near = IrregularBatch.from_padded(batch.times, values, batch.mask, batch.lengths)
    far = IrregularBatch.from_padded(batch.times + 1e6, values, batch.mask, batch.lengths)  # float32 spacing 0.06 there
    torch.testing.assert_close(model(far), model(near), atol=1e-5, rtol=0)

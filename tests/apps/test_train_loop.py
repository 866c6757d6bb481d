"""The training loop: minibatches, one epoch of optimisation, evaluation."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

import neuralct as nct
from neuralct.data import Series, collate
from neuralct.data.datasets import load
from neuralct.errors import InvalidInputError, SolveFailed
from neuralct.models.base import AbstractContinuousModel, AbstractJumpModel, SolveOptions, last_observed
from neuralct.train import TrainingFailed, evaluate, minibatches, task_loss, train_epoch


class _TinyODERNN(AbstractJumpModel):
    """A GRU cell at observations and a linear decay between them: enough to learn spirals."""

    def __init__(self, channels: int, hidden: int, outputs: int) -> None:
        super().__init__()
        self.cell = nn.GRUCell(channels, hidden)
        self.decay = nn.Linear(hidden, hidden)
        self.head = nn.Linear(hidden, outputs)

    def initial_state(self, batch):
        return torch.zeros(batch.batch_size, self.cell.hidden_size)

    @property
    def flow(self):
        return lambda t, h, args: torch.tanh(self.decay(h))

    def update(self, h, batch, k):
        return self.cell(batch.values[:, k], h)

    def readout(self, h, batch):
        return self.head(h)

    def default_solve_options(self):
        return SolveOptions(nct.Euler(), nct.KnotToKnot())


def test_minibatches_cover_every_sample_once_trimmed_to_their_longest() -> None:
    data = load("spirals", "train", size=20, length=16)
    seen = []
    for batch in minibatches(data, 6, torch.Generator().manual_seed(0)):
        assert batch.max_length == int(batch.lengths.max())
        seen.append(batch.batch_size)
    assert seen == [6, 6, 6, 2]
    assert [b.batch_size for b in minibatches(data, 20)] == [20]


def test_training_learns_spirals_and_reports_evaluations() -> None:
    torch.manual_seed(0)
    train, test = (load("spirals", split, size=128, length=24) for split in ("train", "test"))
    model = _TinyODERNN(2, 16, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-2)
    generator = torch.Generator().manual_seed(0)
    first = train_epoch(model, train, optimizer, batch_size=32, generator=generator)
    for _ in range(11):
        last = train_epoch(model, train, optimizer, batch_size=32, generator=generator, clip_norm=1.0)
    assert last.loss < first.loss
    result = evaluate(model, test)
    assert result.accuracy > 0.8
    assert result.samples == 128
    # The mean over samples of the evaluations of each sample's real gaps (none in the padding).
    with torch.no_grad():
        per_sample = model.run(test).stats.vf_evals
    assert result.vf_evals == pytest.approx(float(per_sample.double().mean()))
    assert (per_sample >= test.lengths - 1).all()
    again = evaluate(model, test)
    assert again.loss == result.loss


def test_training_needs_class_index_targets() -> None:
    data = load("spirals", "train", size=8, length=8)
    model = _TinyODERNN(2, 4, 2)
    bad = dataclasses.replace(data, targets=data.targets.view(-1, 1))
    with pytest.raises(InvalidInputError, match="`data.targets`"):
        evaluate(model, bad)
    with pytest.raises(InvalidInputError, match="`size`"):
        next(minibatches(data, 0))


def test_regression_targets_train_on_squared_error_without_accuracy() -> None:
    torch.manual_seed(0)
    train = load("adding", "train", size=64, length=12)
    model = _TinyODERNN(2, 8, 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = train_epoch(model, train, optimizer, batch_size=16, generator=torch.Generator().manual_seed(0))
    result = evaluate(model, train)
    assert first.accuracy is None and result.accuracy is None
    with torch.no_grad():
        expected = torch.nn.functional.mse_loss(model(train).squeeze(-1), train.targets)
    assert result.loss == pytest.approx(float(expected), rel=1e-5)
    with pytest.raises(InvalidInputError, match="shaped like the targets"):
        task_loss(torch.zeros(4, 2), torch.zeros(4))


def test_clipping_bounds_the_global_gradient_norm_and_keeps_its_direction(monkeypatch) -> None:
    torch.manual_seed(0)
    data = load("spirals", "train", size=32, length=12)
    model = _TinyODERNN(2, 8, 2)
    before, after = [], []
    real_clip = torch.nn.utils.clip_grad_norm_

    def recording_clip(parameters, max_norm):
        parameters = list(parameters)
        before.append(torch.cat([p.grad.flatten() for p in parameters]).clone())
        return real_clip(parameters, max_norm)

    class Recording(torch.optim.SGD):
        def step(self, closure=None):
            after.append(torch.cat([p.grad.flatten() for p in model.parameters()]).clone())
            return super().step(closure)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", recording_clip)
    optimizer = Recording(model.parameters(), lr=0.1)
    result = train_epoch(
        model, data, optimizer, batch_size=8, generator=torch.Generator().manual_seed(0), clip_norm=0.05
    )
    assert len(before) == len(after) == 4
    assert result.grad_norm == pytest.approx(sum(float(g.norm()) for g in before) / 4)  # the monitor: before clipping
    assert max(float(g.norm()) for g in before) > 0.05  # the bound was active
    for raw, clipped in zip(before, after):
        assert float(clipped.norm()) <= 0.05 * (1 + 1e-6)
        assert float(torch.nn.functional.cosine_similarity(raw, clipped, dim=0)) == pytest.approx(1.0, abs=1e-6)


# --- samples whose solves fail -----------------------------------------------------------------
# y' = y^2 from y0 has y(t) = y0 / (1 - y0 t): it blows up at t = 1 / y0, so on [0, 1] the samples
# with y0 = 3 and y0 = 2.5 fail their solves, and the others reach the closed form.
F64 = torch.float64
STARTS = [0.5, -1.0, 3.0, 0.2, 0.8, -0.5, 2.5, 0.1]
FAILING = [2, 6]
OPTIONS = SolveOptions(nct.Tsit5(), nct.PIDController(rtol=1e-9, atol=1e-12), max_steps=80)


class _Blowup(AbstractContinuousModel):
    """The state y' = y^2 from the first observation, read out by a linear head at the last."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(1, 2, dtype=F64)

    def initial_state(self, batch):
        return batch.values[:, 0, :1]

    def term(self, batch):
        return nct.ODETerm(lambda t, y, args: y**2)

    def readout(self, solution, batch):
        return self.head(last_observed(solution.ys, batch))

    def default_solve_options(self):
        return OPTIONS


class _BlowupJumps(AbstractJumpModel):
    """The same flow between observations, with updates that keep the state: at the gap where a
    sample blows up another one is already padded, so the failing solve does not cover the batch."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(1, 2, dtype=F64)

    def initial_state(self, batch):
        return batch.values[:, 0, :1]

    @property
    def flow(self):
        return lambda t, h, args: h**2

    def update(self, h, batch, k):
        return h

    def readout(self, h, batch):
        return self.head(h)

    def default_solve_options(self):
        return OPTIONS


def _blowups(lengths: list[int]) -> nct.data.IrregularBatch:
    times = torch.linspace(0.0, 1.0, 6, dtype=F64)
    series = [
        Series(times[:n], torch.full((n, 1), y0, dtype=F64), target=torch.tensor(i % 2))
        for i, (y0, n) in enumerate(zip(STARTS, lengths))
    ]
    return collate(series)


def _closed_form_loss(model, data, rows: list[int]) -> float:
    """The mean cross-entropy of `rows` from the closed form y(t_end) = y0 / (1 - y0 t_end)."""
    y0, end = torch.tensor(STARTS, dtype=F64)[rows], data.last_time[rows]
    with torch.no_grad():
        return float(task_loss(model.head((y0 / (1 - y0 * end))[:, None]), data.targets[rows]))


@pytest.mark.parametrize("model_class, lengths", [(_Blowup, [6] * 8), (_BlowupJumps, [6, 2, 6, 6, 6, 6, 6, 6])])
def test_a_failing_sample_is_counted_and_the_others_are_scored(model_class, lengths) -> None:
    torch.manual_seed(0)
    model, data = model_class(), _blowups(lengths)
    survivors = [i for i in range(8) if i not in FAILING]
    result = evaluate(model, data)  # before: SolveFailed for the whole evaluation
    assert (result.failed, result.samples) == (2, 6)
    assert result.loss == pytest.approx(_closed_form_loss(model, data, survivors), rel=1e-8)
    assert result.accuracy * 6 == pytest.approx(round(result.accuracy * 6))
    with pytest.raises(SolveFailed):
        evaluate(model, data, strict=True)


def test_a_training_step_leaves_failed_samples_out_and_equals_a_step_on_the_others() -> None:
    torch.manual_seed(0)
    model, data = _Blowup(), _blowups([6] * 8)
    survivors = [i for i in range(8) if i not in FAILING]
    alone = _Blowup()
    alone.load_state_dict(model.state_dict())
    step = lambda m: torch.optim.SGD(m.parameters(), lr=0.5)  # noqa: E731
    result = train_epoch(model, data, step(model), batch_size=8, generator=torch.Generator().manual_seed(0))
    reference = train_epoch(alone, data.select(survivors), step(alone), batch_size=8, generator=torch.Generator())
    assert (result.failed, result.samples) == (2, 6)  # before: TrainingFailed, no step
    assert result.loss == pytest.approx(reference.loss, rel=1e-12)
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, alone.state_dict()[name], rtol=1e-12, atol=1e-14)
    assert not torch.equal(model.head.weight, _Blowup().head.weight)  # a step was taken
    with pytest.raises(TrainingFailed, match="batch 1 of 1: the forward solve failed"):
        train_epoch(model, data, step(model), batch_size=8, generator=torch.Generator(), strict=True)
    with pytest.raises(TrainingFailed, match="the solves of all 2 training samples failed"):
        train_epoch(model, data.select(FAILING), step(model), batch_size=1, generator=torch.Generator())

"""The training loop: minibatches, one epoch of optimisation, evaluation."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

import neuralct as nct
from neuralct.data.datasets import load
from neuralct.errors import InvalidInputError
from neuralct.models.base import AbstractJumpModel, SolveOptions
from neuralct.train import evaluate, minibatches, task_loss, train_epoch


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

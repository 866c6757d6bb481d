"""Length-bucketed minibatches: cover every sample once, keep similar lengths together, cost less."""

from __future__ import annotations

import pytest
import torch

from neuralct.data import Series, collate, minibatch_indices
from neuralct.errors import InvalidInputError
from neuralct.models.ncde import NeuralCDE
from neuralct.train import train_epoch


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_without_by_length_the_minibatches_are_a_random_permutation_as_before() -> None:
    expected = torch.randperm(23, generator=_generator(0)).split(5)
    got = minibatch_indices(torch.randint(1, 50, (23,)), 5, _generator(0), by_length=False)
    assert len(got) == len(expected) and all(torch.equal(a, b) for a, b in zip(got, expected))
    in_order = minibatch_indices(torch.ones(7, dtype=torch.long), 3, by_length=False)
    assert [rows.tolist() for rows in in_order] == [[0, 1, 2], [3, 4, 5], [6]]


@pytest.mark.parametrize("by_length", [True, False])
def test_minibatches_cover_every_sample_once(by_length: bool) -> None:
    lengths = torch.randint(1, 100, (37,), generator=_generator(1))
    batches = minibatch_indices(lengths, 8, _generator(2), by_length=by_length)
    assert sorted(len(rows) for rows in batches) == [5, 8, 8, 8, 8]
    assert torch.equal(torch.cat(batches).sort().values, torch.arange(37))


def test_lengths_a_factor_apart_never_share_a_minibatch_yet_equal_lengths_meet_anew() -> None:
    """Lengths 10-11 and 100-110: over 50 epochs no minibatch mixes them (the jitter moves a key
    by 10% at most), while the pairs among the short ones change from epoch to epoch."""
    lengths = torch.tensor([10, 11] * 8 + [100, 110] * 8)
    generator = _generator(3)
    pairs = set()
    for _ in range(50):
        batches = minibatch_indices(lengths, 8, generator)
        for rows in batches:
            assert bool((lengths[rows] < 50).all()) or bool((lengths[rows] > 50).all())
        first = next(rows for rows in batches if 0 in rows.tolist())
        pairs |= {tuple(sorted((0, other))) for other in first.tolist() if other != 0}
    assert len(pairs) == 15  # sample 0 met every other short sample, not always the same seven


def test_without_a_generator_the_order_is_by_length_with_ties_by_index() -> None:
    batches = minibatch_indices(torch.tensor([5, 1, 5, 3, 1]), 2, by_length=True)
    assert [rows.tolist() for rows in batches] == [[1, 4], [3, 0], [2]]


def test_generators_in_the_same_state_give_the_same_minibatches_for_every_process() -> None:
    lengths = torch.randint(1, 100, (40,), generator=_generator(4))
    first, second = (minibatch_indices(lengths, 6, _generator(5)) for _ in range(2))
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    other = minibatch_indices(lengths, 6, _generator(6))
    assert not all(torch.equal(a, b) for a, b in zip(first, other))


@pytest.mark.parametrize(
    ("lengths", "batch_size", "message"),
    [
        (torch.ones(3), 2, r"`lengths` must be a non-empty integer tensor \[B\]"),
        (torch.ones(3, 1, dtype=torch.long), 2, r"`lengths` must be a non-empty integer tensor \[B\]"),
        (torch.ones(3, dtype=torch.long), 0, "`batch_size` must be a positive int; got 0"),
        (torch.ones(3, dtype=torch.long), True, "`batch_size` must be a positive int; got True"),
    ],
)
def test_minibatch_indices_rejects_bad_lengths_and_sizes(lengths, batch_size, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        minibatch_indices(lengths, batch_size)


def test_bucketing_short_and_long_series_evaluates_no_more_rows_than_each_group_alone() -> None:
    """8 series of 5 points and 8 of 40 under an adaptive NCDE (rows the vector field is evaluated
    on; the weights do not move, lr = 0). A random split pairs short series with long ones and
    pays the long solves for them (measured 6 856 rows); by length, each minibatch is one group
    and costs exactly what the two groups cost alone (608 + 3 744 = 4 352)."""
    torch.manual_seed(0)
    generator = _generator(0)

    def series(length: int, label: int) -> Series:
        times = (0.5 + torch.rand(length, generator=generator)).cumsum(0)
        return Series(times, torch.randn(length, 1, generator=generator), target=torch.tensor(label))

    data = collate([series(5, i % 2) for i in range(8)] + [series(40, i % 2) for i in range(8)])
    model = NeuralCDE(1, 4, 2, width=8, depth=1)
    rows = [0]
    model.field.register_forward_hook(lambda module, args, out: rows.append(rows.pop() + args[1].shape[0]))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)

    def cost(run) -> int:
        rows[0] = 0
        run()
        return rows[0]

    alone = sum(cost(lambda part=part: model.run(data.select(part))) for part in (range(8), range(8, 16)))
    epoch = dict(batch_size=8, generator=_generator(1))
    bucketed = cost(lambda: train_epoch(model, data, optimizer, **epoch, by_length=True))
    mixed = cost(lambda: train_epoch(model, data, optimizer, **epoch, by_length=False))
    assert bucketed == alone, (bucketed, alone)
    assert mixed > 1.3 * bucketed, (mixed, bucketed)

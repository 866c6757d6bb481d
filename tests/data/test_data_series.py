"""The padded batch of irregular series: construction, validation, padding that never leaks."""

from __future__ import annotations

import re

import pytest
import torch

import neuralct as nct
from neuralct.data import IrregularBatch, Series, collate, pad_times

F64 = torch.float64
NAN = float("nan")


def _series() -> list[Series]:
    return [
        Series(
            torch.tensor([0.0, 0.4, 1.3], dtype=F64),
            torch.tensor([[1.0, 2.0], [0.5, NAN], [0.2, 0.1]], dtype=F64),
            target=torch.tensor(2),
        ),
        Series(
            torch.tensor([0.1, 2.0], dtype=F64),
            torch.tensor([[3.0, 1.0], [NAN, 0.0]], dtype=F64),
            target=torch.tensor(0),
        ),
        Series(torch.tensor([5.0], dtype=F64), torch.tensor([[NAN, 4.0]], dtype=F64), target=torch.tensor(1)),
    ]


def test_collate_pads_to_the_longest_series_and_marks_missing_and_padded_values():
    batch = collate(_series())
    assert (batch.batch_size, batch.max_length, batch.channels) == (3, 3, 2)
    assert batch.lengths.tolist() == [3, 2, 1]
    assert batch.valid.tolist() == [[True, True, True], [True, True, False], [True, False, False]]
    assert batch.mask[0].tolist() == [[True, True], [True, False], [True, True]]
    assert batch.mask[1].tolist() == [[True, True], [False, True], [False, False]]
    assert batch.mask[2].tolist() == [[False, True], [False, False], [False, False]]
    assert batch.targets.tolist() == [2, 0, 1]
    # unobserved and padded values are 0, never NaN; observed ones are kept exactly
    assert not bool(torch.isnan(batch.values).any())
    assert bool((batch.values[~batch.mask] == 0).all())
    torch.testing.assert_close(batch.values[0, 2], torch.tensor([0.2, 0.1], dtype=F64), rtol=0, atol=0)
    assert bool(torch.isnan(batch.with_nan()[0, 1, 1]))


def test_padded_times_continue_each_sample_and_keep_every_row_strictly_increasing():
    batch = collate(_series())
    torch.testing.assert_close(batch.times[1], torch.tensor([0.1, 2.0, 3.9], dtype=F64))
    torch.testing.assert_close(batch.times[2], torch.tensor([5.0, 6.0, 7.0], dtype=F64))  # one observation: unit steps
    assert bool((batch.times.diff(dim=1) > 0).all())
    torch.testing.assert_close(batch.last_time, torch.tensor([1.3, 2.0, 5.0], dtype=F64))


def test_from_padded_repairs_nan_padding_and_zeroes_unobserved_values():
    times = torch.tensor([[0.0, 1.0, 2.0], [0.0, 0.5, NAN]], dtype=F64)
    values = torch.tensor([[[1.0], [NAN], [3.0]], [[2.0], [7.0], [NAN]]], dtype=F64)
    batch = IrregularBatch.from_padded(times, values, lengths=torch.tensor([3, 2]))
    assert batch.mask[:, :, 0].tolist() == [[True, False, True], [True, True, False]]
    torch.testing.assert_close(batch.times[1], torch.tensor([0.0, 0.5, 1.0], dtype=F64))
    assert float(batch.values[0, 1, 0]) == 0.0


def test_a_solve_over_the_padded_times_matches_each_sample_solved_alone():
    # The padded tail only extends the integration past a sample's last time; at its real
    # times the state agrees with a solve of the sample alone to the solver's tolerance.
    batch = collate(_series())
    decay = nct.ODETerm(lambda t, y, args: -y + torch.cos(t)[:, None])
    y0 = torch.ones(3, 1, dtype=F64)
    controller = nct.PIDController(rtol=1e-9, atol=1e-11)
    together = nct.solve(decay, y0, batch.times, controller=controller)
    for b in range(batch.batch_size):
        length = int(batch.lengths[b])
        if length < 2:
            continue
        alone = nct.solve(decay, y0[b : b + 1], batch.times[b : b + 1, :length], controller=controller)
        torch.testing.assert_close(together.ys[b, :length], alone.ys[0], rtol=1e-8, atol=1e-8)


def test_to_moves_every_tensor_and_keeps_masks_and_lengths_integral():
    batch = collate(_series()).to(dtype=torch.float32)
    assert batch.values.dtype == batch.times.dtype == torch.float32
    assert batch.mask.dtype == torch.bool and batch.lengths.dtype == torch.long
    assert batch.targets.dtype == torch.long
    assert collate(_series()).to(device="cpu").values.device.type == "cpu"


def test_select_trims_the_padding_to_the_selected_samples():
    batch = collate(_series())
    sub = batch.select([1, 2])
    again = collate(_series()[1:])
    assert sub.max_length == 2
    for name in ("times", "values", "mask", "lengths", "targets"):
        torch.testing.assert_close(getattr(sub, name), getattr(again, name), rtol=0, atol=0)


def test_a_minibatch_of_a_valid_dataset_is_valid_when_it_misses_a_rarely_observed_channel():
    # Channel 0 of sample 2 and channel 1 of sample 1 are never observed: the subset [2] sees no
    # channel 0, yet every sample in it is valid, so it is a valid minibatch.
    batch = collate(_series())
    sub = batch.select([2])
    assert sub.mask[:, :, 0].sum() == 0 and sub.lengths.tolist() == [1]
    torch.testing.assert_close(sub.values, torch.tensor([[[0.0, 4.0]]], dtype=F64), rtol=0, atol=0)
    with pytest.raises(nct.InvalidInputError, match="`index` must select at least one of the 3 samples; got none"):
        batch.select([])


def test_training_passes_every_minibatch_of_a_dataset_with_a_channel_seen_in_one_series():
    from neuralct.train import minibatches

    rare = [Series(torch.tensor([0.0, 1.0]), torch.tensor([[1.0, NAN], [2.0, NAN]])) for _ in range(7)]
    rare.append(Series(torch.tensor([0.0, 1.0]), torch.tensor([[1.0, 3.0], [2.0, NAN]])))
    data = collate(rare)
    sizes = [b.batch_size for b in minibatches(data, 3, torch.Generator().manual_seed(0))]
    assert sizes == [3, 3, 2]  # before: the first minibatch without series 7 raised "channel 1 ... no sample"


def test_pad_times_rejects_lengths_beyond_the_padding():
    with pytest.raises(nct.InvalidInputError, match=r"`lengths` must lie in \[1, T = 2\]; got \[3\]"):
        pad_times(torch.zeros(1, 2), torch.tensor([3]))


# --- validation: each bad input names what is wrong ---------------------------------------


def _direct(**changes) -> IrregularBatch:
    base = collate(_series())
    fields = dict(
        times=base.times, values=base.values, mask=base.mask, lengths=base.lengths, targets=base.targets, static=None
    )
    fields.update(changes)
    return IrregularBatch(**fields)


def test_times_that_do_not_increase_within_a_sample_are_named():
    bad = Series(torch.tensor([0.0, 1.0, 0.5]), torch.ones(3, 1))
    with pytest.raises(nct.InvalidInputError, match=re.escape("sample 0 has times[0, 2] = 0.5 after times[0, 1] = 1")):
        collate([bad])


def test_nan_in_observation_times_is_named():
    bad = Series(torch.tensor([0.0, NAN]), torch.ones(2, 1))
    with pytest.raises(nct.InvalidInputError, match=re.escape("`times` must be finite; times[0, 1] = nan")):
        collate([bad])


def test_values_and_mask_of_different_shapes_are_rejected():
    bad = Series(torch.zeros(2), torch.ones(2, 3), mask=torch.ones(2, 2, dtype=torch.bool))
    with pytest.raises(nct.InvalidInputError, match=r"`series\[0\].mask` must have the shape of its values \(2, 3\)"):
        collate([bad])
    with pytest.raises(nct.InvalidInputError, match=r"`mask` must be a bool tensor of shape \(3, 3, 2\)"):
        _direct(mask=torch.ones(3, 3, 1, dtype=torch.bool))


def test_a_sample_with_no_observation_is_rejected():
    empty = Series(torch.tensor([0.0, 1.0], dtype=F64), torch.full((2, 2), NAN, dtype=F64), target=torch.tensor(0))
    with pytest.raises(nct.InvalidInputError, match="sample 1 has no observed value"):
        collate([_series()[0], empty])


def test_a_channel_observed_in_no_sample_is_a_valid_batch_but_has_no_statistics():
    # One series (or a minibatch) may miss a rare channel; fitting statistics needs it observed.
    series = [Series(torch.tensor([0.0, 1.0]), torch.tensor([[1.0, NAN], [2.0, NAN]]))]
    batch = collate(series)
    assert batch.mask[..., 1].sum() == 0
    assert batch.to(dtype=torch.float64).mask.shape == (1, 2, 2)
    with pytest.raises(nct.InvalidInputError, match="channel 1 is observed in no sample of the batch the statistics"):
        nct.data.transforms.Normalize.fit(batch)


def test_lengths_beyond_the_padding_and_observations_in_the_padding_are_rejected():
    with pytest.raises(nct.InvalidInputError, match=r"`lengths` must lie in \[1, T = 3\]; got \[4, 2, 1\]"):
        _direct(lengths=torch.tensor([4, 2, 1]))
    mask = collate(_series()).mask.clone()
    mask[2, 2, 0] = True
    with pytest.raises(nct.InvalidInputError, match=r"marks observations in the padding of sample 2 \(length 1\)"):
        _direct(mask=mask)


def test_non_zero_values_at_unobserved_positions_are_rejected():
    values = collate(_series()).values.clone()
    values[1, 2, 0] = 5.0
    with pytest.raises(nct.InvalidInputError, match="`values` must be 0 wherever `mask` is False"):
        _direct(values=values)


def test_collate_rejects_an_empty_list_and_mixed_channel_counts():
    with pytest.raises(nct.InvalidInputError, match="at least one Series"):
        collate([])
    with pytest.raises(nct.InvalidInputError, match=r"same number of channels; got \[1, 2\]"):
        collate([Series(torch.zeros(1), torch.ones(1, 1)), Series(torch.zeros(1), torch.ones(1, 2))])


def test_targets_given_for_some_series_only_are_rejected():
    series = [_series()[0], Series(torch.zeros(1, dtype=F64), torch.ones(1, 2, dtype=F64))]
    with pytest.raises(nct.InvalidInputError, match="`target` is given for some series but not for series 1"):
        collate(series)

"""Transforms of irregular batches: dropped observations, time jitter, train-fitted normalisation
and merged close times."""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from neuralct.data import IrregularBatch, Series, collate, control_path, merge_close_times
from neuralct.data.transforms import (
    NORMALIZATIONS,
    NearZeroWarning,
    Normalize,
    drop_observations,
    jitter_times,
    near_zero_fraction,
    parse_normalization,
)
from neuralct.errors import InvalidInputError


def _random_batch(seed: int, size: int = 6, length: int = 12, channels: int = 3, observed: float = 0.7):
    """A float64 batch with random lengths, irregular times and about `observed` of its values present."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, length + 1, (size,), generator=g)
    times = torch.rand(size, length, generator=g, dtype=torch.float64).add(0.05).cumsum(dim=1)
    values = torch.randn(size, length, channels, generator=g, dtype=torch.float64) * 3 + 2
    mask = torch.rand(size, length, channels, generator=g) < observed
    mask[:, 0, :] = True  # every channel of every sample starts observed
    return IrregularBatch.from_padded(times, values, mask=mask, lengths=lengths)


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("rate", [0.3, 0.5, 0.7])
def test_dropping_removes_the_requested_fraction_of_every_channel_of_every_sample(rate: float) -> None:
    batch = _random_batch(0, size=40, length=30)
    dropped = drop_observations(batch, rate, generator=_generator(1))
    before, after = batch.mask.sum(dim=1), dropped.mask.sum(dim=1)
    # Each (sample, channel) loses rate * n rounded to a whole number, keeping at least one.
    assert bool(((before - after - rate * before).abs() <= 0.5).logical_or(after == 1).all())
    assert bool((after >= 1).all())
    long = before >= 10
    assert bool(((after[long] / before[long] - (1 - rate)).abs() <= 0.05).all())


def test_dropping_whole_time_points_removes_rows_not_single_values() -> None:
    batch = IrregularBatch.from_padded(torch.linspace(0, 1, 20), torch.randn(5, 20, 4))
    dropped = drop_observations(batch, 0.3, per_channel=False, generator=_generator(2))
    rows = dropped.mask.all(dim=-1)
    assert torch.equal(dropped.mask, rows.unsqueeze(-1).expand_as(dropped.mask))
    assert rows.sum(dim=1).tolist() == [14] * 5


@settings(max_examples=40)
@given(
    seed=st.integers(0, 2**31),
    rate=st.floats(0.0, 0.999),
    per_channel=st.booleans(),
    observed=st.floats(0.05, 1.0),
)
def test_dropping_only_removes_and_never_empties_a_sample_or_a_channel(seed, rate, per_channel, observed) -> None:
    batch = _random_batch(seed, observed=observed)
    dropped = drop_observations(batch, rate, per_channel=per_channel, generator=_generator(seed))
    assert rate == 0 or bool(dropped.observed[dropped.valid].all())  # no empty position left
    for b in range(batch.batch_size):
        n, m = int(batch.lengths[b]), int(dropped.lengths[b])
        # Each kept position is an original one (found by its time), with a subset of its values.
        where = torch.searchsorted(batch.times[b, :n], dropped.times[b, :m])
        assert torch.equal(batch.times[b, where], dropped.times[b, :m])
        assert not bool((dropped.mask[b, :m] & ~batch.mask[b, where]).any())  # nothing invented
        assert torch.equal(dropped.values[b, :m], batch.values[b, where] * dropped.mask[b, :m])
        if per_channel:
            assert torch.equal(dropped.mask[b].any(dim=0), batch.mask[b].any(dim=0))  # no channel of a sample lost


def test_dropping_removes_the_positions_it_empties_and_keeps_the_times_of_the_rest() -> None:
    """Compaction measured on a univariate batch: at rate 0.5 a 20-point series keeps exactly
    its 10 observed positions, at their own times."""
    batch = IrregularBatch.from_padded(torch.linspace(0, 1.9, 20, dtype=torch.float64), torch.randn(4, 20, 1))
    dropped = drop_observations(batch, 0.5, generator=_generator(3))
    assert dropped.lengths.tolist() == [10] * 4 and dropped.max_length == 10
    assert bool(dropped.mask.all())
    for b in range(4):
        kept = torch.isin(batch.times[b], dropped.times[b])
        assert int(kept.sum()) == 10 and torch.equal(dropped.values[b], batch.values[b, kept])


def test_dropping_keeps_the_positions_of_targets_with_a_time_axis() -> None:
    batch = IrregularBatch.from_padded(torch.linspace(0, 1, 20), torch.randn(3, 20, 1), targets=torch.randn(3, 20, 2))
    dropped = drop_observations(batch, 0.5, generator=_generator(4))
    assert dropped.lengths.tolist() == [20] * 3 and torch.equal(dropped.targets, batch.targets)
    assert dropped.mask.sum(dim=1).flatten().tolist() == [10] * 3


def test_compaction_shifts_observed_positions_left_and_trims_the_padding() -> None:
    nan = float("nan")
    batch = collate(
        [
            Series(torch.tensor([0.0, 1.0, 2.0, 3.0]), torch.tensor([[nan, nan], [1.0, nan], [nan, nan], [nan, 2.0]])),
            Series(torch.tensor([0.5, 0.7]), torch.tensor([[3.0, 4.0], [nan, nan]])),
        ]
    )
    batch = replace(batch, targets=torch.tensor([0, 1]))
    compact = batch.compact()
    assert compact.lengths.tolist() == [2, 1] and compact.max_length == 2
    assert compact.times[0].tolist() == [1.0, 3.0] and compact.times[1, 0].item() == 0.5
    assert compact.values.tolist() == [[[1.0, 0.0], [0.0, 2.0]], [[3.0, 4.0], [0.0, 0.0]]]
    assert compact.mask[1, 1].any().item() is False and compact.targets.tolist() == [0, 1]
    assert compact.compact() is compact  # nothing left to remove


def test_dropping_is_reproducible_under_a_seeded_generator() -> None:
    batch = _random_batch(3)
    first = drop_observations(batch, 0.5, generator=_generator(7))
    assert torch.equal(first.mask, drop_observations(batch, 0.5, generator=_generator(7)).mask)
    assert not torch.equal(first.mask, drop_observations(batch, 0.5, generator=_generator(8)).mask)


@pytest.mark.parametrize("rate", [-0.1, 1.0, float("nan"), True])
def test_dropping_rejects_a_rate_outside_zero_to_one(rate) -> None:
    with pytest.raises(InvalidInputError, match=r"`rate` must be a finite number in \[0, 1\)"):
        drop_observations(_random_batch(0), rate)


@settings(max_examples=40)
@given(seed=st.integers(0, 2**31), scale=st.floats(0.0, 0.999))
def test_jitter_keeps_every_row_strictly_increasing_and_moves_times_within_half_a_gap(seed, scale) -> None:
    batch = _random_batch(seed)
    shaken = jitter_times(batch, scale, generator=_generator(seed))
    assert bool((shaken.times.diff(dim=1) > 0).all())
    gaps = batch.times.diff(dim=1)
    moved = (shaken.times - batch.times).abs()
    # Position k moves less than half of each gap it borders (real positions only).
    assert bool((moved[:, :-1][batch.valid[:, 1:]] <= 0.5 * scale * gaps[batch.valid[:, 1:]] + 1e-12).all())
    assert bool((moved[:, 1:][batch.valid[:, 1:]] <= 0.5 * scale * gaps[batch.valid[:, 1:]] + 1e-12).all())
    assert torch.equal(shaken.values, batch.values) and torch.equal(shaken.mask, batch.mask)


def test_jitter_moves_times_reproducibly() -> None:
    batch = _random_batch(4)
    shaken = jitter_times(batch, 0.9, generator=_generator(5))
    assert not torch.equal(shaken.times, batch.times)
    assert torch.equal(shaken.times, jitter_times(batch, 0.9, generator=_generator(5)).times)


def test_jitter_rejects_a_scale_that_could_reorder_times() -> None:
    with pytest.raises(InvalidInputError, match=r"`scale` must be a finite number in \[0, 1\)"):
        jitter_times(_random_batch(0), 1.0)


def test_normalization_fitted_on_train_gives_zero_mean_and_unit_std_over_observed_values(float64) -> None:
    train = _random_batch(6, size=30, length=20, observed=0.5)
    unit = Normalize.fit(train)(train)
    observed = [unit.values[..., c][unit.mask[..., c]] for c in range(train.channels)]
    torch.testing.assert_close(torch.stack([o.mean() for o in observed]), torch.zeros(3), atol=1e-12, rtol=0)
    torch.testing.assert_close(torch.stack([o.std(correction=0) for o in observed]), torch.ones(3))
    assert bool((unit.values[~unit.mask] == 0).all())  # unobserved and padded entries stay 0


def test_normalization_statistics_ignore_padding_and_missing_values(float64) -> None:
    nan = float("nan")
    series = [
        Series(torch.tensor([0.0, 1.0, 2.0]), torch.tensor([[1.0, nan], [3.0, 10.0], [5.0, nan]])),
        Series(torch.tensor([0.0]), torch.tensor([[7.0, 20.0]])),
    ]
    fitted = Normalize.fit(collate(series))  # channel 0: 1, 3, 5, 7; channel 1: 10, 20
    torch.testing.assert_close(fitted.mean, torch.tensor([4.0, 15.0]))
    torch.testing.assert_close(fitted.std, torch.tensor([5.0**0.5, 5.0]))


def test_normalization_applies_train_statistics_to_another_split(float64) -> None:
    train, test = _random_batch(8), _random_batch(9)
    normalize = Normalize.fit(train)
    expected = ((test.values - normalize.mean) / normalize.std) * test.mask
    torch.testing.assert_close(normalize.apply(test).values, expected)


def test_a_constant_channel_is_only_centred(float64) -> None:
    batch = IrregularBatch.from_padded(torch.linspace(0, 1, 4), torch.full((2, 4, 1), 3.0))
    fitted = Normalize.fit(batch)
    assert fitted.std.tolist() == [1.0] and bool((fitted(batch).values == 0).all())


@pytest.mark.parametrize(
    ("mean", "std", "message"),
    [
        (torch.zeros(2), torch.tensor([1.0, 0.0]), "`std` must be positive"),
        (torch.zeros(2), torch.ones(3), "`mean` and `std` must both be"),
        (torch.zeros(2, 1), torch.ones(2), r"`mean` must be a floating tensor \[C\]"),
        (torch.tensor([0.0, float("inf")]), torch.ones(2), "`mean` must be finite"),
    ],
)
def test_normalize_rejects_bad_statistics(mean, std, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        Normalize(mean=mean, std=std)


def test_normalize_rejects_a_batch_with_other_channels() -> None:
    normalize = Normalize(mean=torch.zeros(2), std=torch.ones(2))
    with pytest.raises(InvalidInputError, match="must have the 2 channels this Normalize was fitted on; got 3"):
        normalize(_random_batch(0).to(dtype=torch.float32))


def _six_decades(size: int = 60, length: int = 30) -> IrregularBatch:
    """Zero-mean noisy series whose scales run log-uniformly from 10^0 to 10^6 (one per sample)."""
    g = _generator(11)
    scales = 10.0 ** torch.linspace(0, 6, size, dtype=torch.float64)
    values = torch.randn(size, length, 1, generator=g, dtype=torch.float64) * scales[:, None, None]
    mask = torch.rand(size, length, 1, generator=g) < 0.8
    mask[:, 0] = True
    return IrregularBatch.from_padded(torch.linspace(0, 1, length, dtype=torch.float64), values, mask=mask)


def test_a_global_scale_over_six_decades_warns_and_asinh_or_series_scaling_does_not() -> None:
    batch = _six_decades()
    with pytest.warns(NearZeroWarning, match=r"leaves \d+% of channel 0's .* Try 'asinh' .* or 'series'"):
        standard = Normalize.fit(batch)
    assert 0.5 < near_zero_fraction(standard(batch)) < 0.9  # measured 0.645: most series sit at ~0
    for spec in ("asinh", "series", "asinh+series"):
        with warnings.catch_warnings():
            warnings.simplefilter("error", NearZeroWarning)
            normalize = Normalize.from_spec(spec, batch)
        assert 0.0 < near_zero_fraction(normalize(batch)) < 0.1, spec  # a unit normal has 0.04


def test_robust_scale_is_numpys_median_and_interquartile_range_of_the_observed_values(float64) -> None:
    batch = _random_batch(12, size=30, length=20, observed=0.5)
    fitted = Normalize.fit(batch, "robust")
    for c in range(batch.channels):
        observed = batch.values[..., c][batch.mask[..., c]].numpy()
        q1, median, q3 = np.percentile(observed, [25, 50, 75])
        assert fitted.mean[c].item() == pytest.approx(median, rel=1e-12)
        assert fitted.std[c].item() == pytest.approx((q3 - q1) / 1.3489795, rel=1e-7)


def test_robust_scale_of_a_normal_channel_is_close_to_its_standard_deviation_and_ignores_outliers(float64) -> None:
    values = torch.randn(1, 20000, 1, generator=_generator(13)) * 3 + 5
    values[0, :20] = 1e6  # 0.1% of huge outliers
    batch = IrregularBatch.from_padded(torch.linspace(0, 1, 20000), values)
    robust = Normalize.fit(batch, "robust")
    assert abs(robust.std.item() - 3) < 0.1 and abs(robust.mean.item() - 5) < 0.1
    with pytest.warns(NearZeroWarning, match="leaves 100% of channel 0's"):
        standard = Normalize.fit(batch)
    assert standard.std.item() > 1e4  # the outliers own the standard scale


def test_series_scaling_gives_every_series_zero_mean_and_unit_std_over_its_observed_values(float64) -> None:
    batch = _random_batch(14, size=20, length=16, observed=0.6)
    batch = replace(batch, values=batch.values * torch.logspace(0, 5, 20)[:, None, None])
    unit = Normalize.fit(batch, "series")(batch)
    for b in range(batch.batch_size):
        for c in range(batch.channels):
            observed = unit.values[b, :, c][unit.mask[b, :, c]]
            if observed.numel() > 1 and batch.values[b, :, c][batch.mask[b, :, c]].unique().numel() > 1:
                assert abs(observed.mean().item()) < 1e-12 and abs(observed.std(correction=0).item() - 1) < 1e-12
            else:  # one observation (or a constant): centred, scale 1
                assert bool((observed == 0).all())


def test_asinh_maps_sinh_of_round_numbers_back_to_them_before_the_scale(float64) -> None:
    values = torch.sinh(torch.tensor([[[-3.0], [0.0], [1.0], [2.0], [7.0]]]))
    batch = IrregularBatch.from_padded(torch.linspace(0, 1, 5), values)
    raw = Normalize(scale="none", transform="asinh")(batch)
    torch.testing.assert_close(raw.values.flatten(), torch.tensor([-3.0, 0.0, 1.0, 2.0, 7.0]), rtol=0, atol=1e-12)
    standard = Normalize.from_spec("asinh", batch)
    assert standard.mean.item() == pytest.approx(1.4) and standard.std.item() == pytest.approx(10.64**0.5)


@pytest.mark.parametrize("spec", NORMALIZATIONS)
def test_every_spec_survives_a_json_round_trip_with_identical_outputs(spec: str) -> None:
    train, test = _random_batch(15).to(dtype=torch.float32), _random_batch(16).to(dtype=torch.float32)
    normalize = Normalize.from_spec(spec, train)
    again = Normalize.from_dict(json.loads(json.dumps(normalize.to_dict())))
    assert torch.equal(again(test).values, normalize(test).values)
    assert again.to_dict() == normalize.to_dict()


def test_the_default_spec_and_fit_are_the_plain_mean_and_std() -> None:
    assert parse_normalization("standard") == ("standard", None)
    assert parse_normalization("asinh") == ("standard", "asinh")
    assert parse_normalization("asinh+robust") == ("robust", "asinh")
    assert parse_normalization("none") == ("none", None)
    train = _random_batch(17)
    assert torch.equal(Normalize.from_spec("standard", train)(train).values, Normalize.fit(train)(train).values)


@pytest.mark.parametrize("spec", ["log", "Standard", "robust+asinh", "", None])
def test_a_bad_normalization_spec_names_every_valid_one(spec) -> None:
    valid = "'standard', 'robust', 'series', 'none', 'asinh', 'asinh+robust', 'asinh+series'"
    with pytest.raises(InvalidInputError, match=f"`normalization` must be one of {re.escape(valid)}; got"):
        parse_normalization(spec)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"scale": "robust", "transform": None, "mean": [0.0]}, "must be a dict with the keys mean, scale, std"),
        ({"scale": "standard", "transform": None, "mean": ["a"], "std": [1.0]}, r"`data\['mean'\]` must be a list"),
        ({"scale": "series", "transform": None, "mean": [0.0], "std": [1.0]}, "must be None for scale 'series'"),
        ({"scale": "minmax", "transform": None, "mean": None, "std": None}, "`scale` must be one of 'standard'"),
        ({"scale": "none", "transform": "log", "mean": None, "std": None}, "`transform` must be one of None, 'asinh'"),
    ],
)
def test_a_stored_normalization_that_is_not_one_is_refused(data, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        Normalize.from_dict(data)


def test_merging_averages_each_channel_over_a_cluster_at_its_last_time() -> None:
    nan = float("nan")
    times = torch.tensor([0.0, 1.0, 1.0, 1.00001, 2.0, 3.0], dtype=torch.float64)
    values = torch.tensor([[1, nan], [2, 4], [nan, 6], [4, nan], [5, 5], [6, nan]], dtype=torch.float64)
    merged = merge_close_times(Series(times, values, target=torch.tensor(1)), 1e-3)
    assert merged.times.tolist() == [0.0, 1.00001, 2.0, 3.0]
    assert merged.mask.tolist() == [[True, False], [True, True], [True, True], [True, False]]
    assert merged.values[merged.mask].tolist() == [1.0, 3.0, 5.0, 5.0, 5.0, 6.0]  # (2 + 4) / 2, (4 + 6) / 2
    assert merged.values[~merged.mask].isnan().all() and merged.target == 1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_merging_a_batch_equals_merging_each_series_by_walking_its_times(seed: int) -> None:
    batch = replace(_random_batch(seed, size=8, length=15), targets=torch.arange(8))
    merged = merge_close_times(batch, 0.3)  # gaps are uniform on [0.05, 1.05): chains of 1-4 merge
    assert merged.lengths.lt(batch.lengths).any() and torch.equal(merged.targets, batch.targets)
    for b in range(batch.batch_size):
        times, values, mask = _walk(batch.times[b], batch.values[b], batch.mask[b], int(batch.lengths[b]), 0.3)
        n = int(merged.lengths[b])
        assert torch.equal(merged.times[b, :n], times) and torch.equal(merged.mask[b, :n], mask)
        torch.testing.assert_close(merged.values[b, :n], values, atol=1e-14, rtol=0)


def _walk(times, values, mask, length, min_gap):
    """Reference: visit the real positions in order, closing a cluster at each gap >= `min_gap`."""
    clusters = [[0]]
    for k in range(1, length):
        if times[k] - times[k - 1] >= min_gap:
            clusters.append([])
        clusters[-1].append(k)
    merged_times = torch.stack([times[c[-1]] for c in clusters])
    merged_mask = torch.stack([mask[c].any(dim=0) for c in clusters])
    sums = torch.stack([(values[c] * mask[c]).sum(dim=0) for c in clusters])
    counts = torch.stack([mask[c].sum(dim=0) for c in clusters])
    return merged_times, torch.where(merged_mask, sums / counts.clamp_min(1), 0.0), merged_mask


def test_merging_a_close_first_pair_removes_the_overshoot_the_limit_cannot_reach() -> None:
    """A 3e-5 gap between the first two observations: the default path has no earlier gap to limit
    its slope against (measured 91x the data's largest value); merged, 1.01x."""
    gen = _generator(3)
    times = torch.linspace(0, 10, 21, dtype=torch.float64)
    times[1] = 3e-5
    values = 2 * torch.sin(times)[None, :, None] + 0.1 * torch.randn(1, 21, 1, generator=gen, dtype=torch.float64)
    batch = IrregularBatch.from_padded(times, values)
    grid = torch.linspace(0, 10, 20001, dtype=torch.float64)[None]

    def largest(data: IrregularBatch) -> float:
        return float(control_path(data).evaluate(grid)[..., 1].abs().max() / values.abs().max())

    assert largest(batch) > 10, largest(batch)
    assert largest(merge_close_times(batch, 1e-3)) <= 1.05, largest(merge_close_times(batch, 1e-3))


@pytest.mark.parametrize("min_gap", [0.0, -1.0, float("nan"), float("inf"), True, "1e-3"])
def test_merging_rejects_a_min_gap_that_is_not_a_positive_number(min_gap) -> None:
    with pytest.raises(InvalidInputError, match=r"`min_gap` must be a positive finite number; got"):
        merge_close_times(_random_batch(0), min_gap)


def test_merging_rejects_a_series_whose_times_decrease_and_data_of_another_kind() -> None:
    series = Series(torch.tensor([0.0, 2.0, 1.0]), torch.zeros(3, 1))
    with pytest.raises(InvalidInputError, match=r"`data.times` must not decrease; times\[2\] = 1 after 2"):
        merge_close_times(series, 0.1)
    with pytest.raises(InvalidInputError, match=r"`data` must be an IrregularBatch or a Series; got Tensor"):
        merge_close_times(torch.zeros(3, 1), 0.1)

"""Control paths from an IrregularBatch: interpolation, missing values, causality, padding and
batching invariance, CDE solves over padded batches, agreement with torchcde, and the default
path's robustness to near-coincident times."""

from __future__ import annotations

import pytest
import torch
import torchcde

import neuralct as nct
from neuralct.data.controls import KINDS, control_path
from neuralct.data.series import IrregularBatch, Series, collate
from neuralct.models.ncde import NeuralCDE
from neuralct.paths.interpolation import CubicPath, RectilinearPath, fill_forward

F64 = torch.float64
NAN = float("nan")
LENGTHS = (9, 5, 3)
# (position, channel) pairs made missing where the series is long enough: a channel missing at
# the start (1 at 0), gaps inside, and two in a row.
MISSING = ((0, 1), (2, 0), (3, 1), (5, 0), (6, 0))
CAUSAL = [("limited_hermite", None), ("hermite", None), ("rectilinear", None), ("linear", "forward")]
TORCHCDE_KINDS = ("linear", "rectilinear", "hermite", "natural")


def _series(length: int, seed: int, missing: bool = True) -> Series:
    gen = torch.Generator().manual_seed(seed)
    gaps = 0.2 + torch.rand(length - 1, generator=gen, dtype=F64)
    times = torch.cat([torch.full((1,), 0.3 * seed, dtype=F64), gaps])
    values = torch.randn(length, 2, generator=gen, dtype=F64)
    for position, channel in MISSING if missing else ():
        if position < length - 1:
            values[position, channel] = NAN
    return Series(times.cumsum(0), values)


def _batch(missing: bool = True) -> tuple[list[Series], IrregularBatch]:
    series = [_series(n, seed, missing) for seed, n in enumerate(LENGTHS)]
    return series, collate(series)


def _grid(batch: IrregularBatch, k: int = 97) -> torch.Tensor:
    """`[B, K]` times from before the earliest start to past the latest end (off the knots)."""
    low, high = float(batch.times[:, 0].min()) - 0.5, float(batch.last_time.max()) + 0.5
    return torch.linspace(low, high, k, dtype=F64).expand(batch.batch_size, -1) + 1e-7


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_passes_through_the_observed_values_and_times(kind):
    _, batch = _batch()
    path = control_path(batch, kind)
    at_knots = path.evaluate(batch.times)
    assert path.channel_names == ("time", "value 0", "value 1")
    # The last real knot is reached from the piece before it: equal up to rounding.
    assert torch.allclose(at_knots[..., 1:][batch.mask], batch.values[batch.mask], atol=1e-14, rtol=0)
    assert torch.allclose(at_knots[..., 0][batch.valid], batch.times[batch.valid], atol=1e-14, rtol=0)


@pytest.mark.parametrize("kind", KINDS)
def test_derivatives_match_central_finite_differences_inside_intervals(kind):
    _, batch = _batch()
    path = control_path(batch, kind, count_channels=True)
    knots = path.path.times  # the doubled knots for a rectilinear path
    t = torch.cat([knots[:, :-1] + f * knots.diff(dim=1) for f in (0.3, 0.7)], dim=1)
    eps = 1e-6
    numeric = (path.evaluate(t + eps) - path.evaluate(t - eps)) / (2 * eps)
    assert torch.allclose(path.derivative(t), numeric, atol=1e-7)
    assert path.derivative(t).abs().sum() > 1


@pytest.mark.parametrize("kind, fill", CAUSAL)
def test_causal_paths_at_a_past_time_do_not_change_when_later_observations_are_appended(kind, fill):
    full = _series(9, seed=0)
    past = torch.linspace(float(full.times[0]) - 0.1, float(full.times[4]), 41, dtype=F64)
    for cut in (4, 5, 6, 7):  # short series end inside gaps of both channels
        short = Series(full.times[:cut], full.values[:cut])
        kept = past[past <= short.times[-1]][None]
        before = control_path(collate([short]), kind, count_channels=True, fill=fill)
        after = control_path(collate([full]), kind, count_channels=True, fill=fill)
        # Bit for bit before the short series' last time; there, one ends its last piece and the
        # other starts its next one: equal up to rounding.
        assert torch.equal(before.evaluate(kept[:, :-1]), after.evaluate(kept[:, :-1]))
        assert torch.equal(before.derivative(kept[:, :-1]), after.derivative(kept[:, :-1]))
        assert torch.allclose(before.evaluate(kept[:, -1]), after.evaluate(kept[:, -1]), atol=1e-14, rtol=0)


@pytest.mark.parametrize("kind", ["linear", "natural"])
def test_linear_fill_and_the_natural_spline_look_ahead(kind):
    full = _series(9, seed=0)
    short = Series(full.times[:6], full.values[:6])  # channel 0 missing at 5, observed at 7
    past = torch.linspace(float(full.times[0]), float(full.times[5]), 41, dtype=F64)[None]
    before, after = control_path(collate([short]), kind), control_path(collate([full]), kind)
    assert not torch.allclose(before.evaluate(past), after.evaluate(past))


def test_rectilinear_path_moves_to_the_next_time_before_reading_the_next_value():
    series = _series(9, seed=0, missing=False)
    changed = series.values.clone()
    changed[5] += 1.0
    paths = [control_path(collate([Series(series.times, v)]), "rectilinear") for v in (series.values, changed)]
    corner = (series.times[4] + series.times[5]) / 2  # the corner (t_5, x_4)
    upto = torch.linspace(float(series.times[0]), float(corner), 33, dtype=F64)[None]
    assert torch.equal(paths[0].evaluate(upto), paths[1].evaluate(upto))
    assert torch.equal(paths[0].evaluate(corner[None]), torch.cat([series.times[5:6], series.values[4]])[None])
    assert not torch.equal(paths[0].evaluate(series.times[5:6]), paths[1].evaluate(series.times[5:6]))


@pytest.mark.parametrize("kind", KINDS)
def test_a_sample_has_the_same_path_alone_as_padded_in_a_batch_with_longer_series(kind):
    series, batch = _batch()
    path = control_path(batch, kind, count_channels=True)
    grid = _grid(batch)
    for b, item in enumerate(series):
        alone = control_path(collate([item]), kind, count_channels=True)
        for method in ("evaluate", "derivative"):
            ours, theirs = getattr(path, method)(grid)[b], getattr(alone, method)(grid[b : b + 1])[0]
            assert torch.allclose(ours, theirs, atol=1e-12, rtol=0), method
        knots = alone.jump_times()
        assert torch.equal(path.jump_times()[b, : knots.shape[1]], knots[0])


@pytest.mark.parametrize("kind", KINDS)
def test_the_path_is_constant_after_the_last_real_time(kind):
    _, batch = _batch()
    path = control_path(batch, kind, count_channels=True)
    later = batch.last_time[:, None] + torch.tensor([0.0, 0.1, 1.0, 100.0], dtype=F64)
    assert torch.equal(path.evaluate(later), path.evaluate(batch.last_time)[:, None].expand(-1, 4, -1))
    assert torch.equal(path.derivative(later), torch.zeros_like(path.derivative(later)))
    assert path.derivative(batch.last_time - 1e-3).abs().sum() > 0  # it does move before


@pytest.mark.parametrize("kind", KINDS)
def test_a_cde_over_a_padded_batch_ends_each_sample_in_its_state_alone(kind):
    series, batch = _batch()
    weight = torch.randn(4, 5, generator=torch.Generator().manual_seed(4), dtype=F64)
    f = lambda t, z, args: torch.tanh(z[..., None] * weight + 0.5)  # elementwise: no batched-matmul rounding
    z0 = torch.randn(batch.batch_size, 4, generator=torch.Generator().manual_seed(3), dtype=F64)
    options = dict(solver=nct.Tsit5(), controller=nct.PIDController(rtol=1e-8, atol=1e-8), dt0=0.01)
    term = nct.ControlTerm(f, control_path(batch, kind, count_channels=True))
    padded = nct.solve(term, z0, batch.times, **options)
    assert bool(padded.succeeded.all())
    for b, item in enumerate(series):
        alone = collate([item])
        single = nct.ControlTerm(f, control_path(alone, kind, count_channels=True))
        solo = nct.solve(single, z0[b : b + 1], alone.times, **options)
        assert torch.allclose(padded.ys[b, -1], solo.ys[0, -1], atol=1e-12, rtol=0)
        assert torch.allclose(padded.ys[b, LENGTHS[b] - 1], solo.ys[0, -1], atol=1e-12, rtol=0)
    assert (padded.ys[:, -1] - z0).abs().min() > 1e-3  # the controls moved every state


def _shared_grid_batch(missing: bool) -> IrregularBatch:
    gen = torch.Generator().manual_seed(7)
    times = torch.cat([torch.zeros(1, dtype=F64), 0.2 + torch.rand(7, generator=gen, dtype=F64)]).cumsum(0)
    values = torch.randn(3, 8, 2, generator=gen, dtype=F64)
    if missing:  # never at the first time: torchcde's rectilinear fill would look ahead there
        values[0, 2, 0] = values[1, 3:6, 1] = values[2, -1, :] = NAN
    return IrregularBatch.from_padded(times, values)


def _torchcde(kind: str, x: torch.Tensor, times: torch.Tensor):
    if kind == "linear":
        return torchcde.LinearInterpolation(torchcde.linear_interpolation_coeffs(x, times), times)
    if kind == "rectilinear":  # their parameter is 0, 1, ..., 2L - 2; ours puts those knots at t_0, m_0, t_1, ...
        knots = RectilinearPath(x[..., 1:], times).times[0]
        return torchcde.LinearInterpolation(torchcde.linear_interpolation_coeffs(x, rectilinear=0), knots)
    if kind == "hermite":
        return torchcde.CubicSpline(torchcde.hermite_cubic_coefficients_with_backward_differences(x, times), times)
    return torchcde.CubicSpline(torchcde.natural_cubic_coeffs(x, times), times)


@pytest.mark.parametrize("kind", TORCHCDE_KINDS)
def test_paths_equal_torchcde_on_a_shared_grid(kind):
    """Their conventions: linear fill of missing values (ours with fill="linear"), and a natural
    spline that fits each channel through its own observations (equal to ours without gaps)."""
    batch = _shared_grid_batch(missing=kind != "natural")
    times = batch.times[0]
    rectilinear = kind == "rectilinear"
    path = control_path(batch, kind, time_channel=rectilinear, fill=None if rectilinear else "linear")
    x = batch.with_nan()
    if rectilinear:
        x = torch.cat([times.expand(3, -1)[..., None], x], dim=-1)
    theirs = _torchcde(kind, x, times)
    grid = torch.linspace(float(times[0]), float(times[-1]), 203, dtype=F64)[:-1] + 1e-9
    assert torch.allclose(path.evaluate(grid.expand(3, -1)), theirs.evaluate(grid), atol=1e-10, rtol=0)
    assert torch.allclose(path.derivative(grid.expand(3, -1)), theirs.derivative(grid), atol=1e-10, rtol=0)


def test_forward_fill_carries_the_last_observation_and_puts_zero_before_the_first():
    _, batch = _batch()
    data = control_path(batch, "hermite").evaluate(batch.times)[0, :, 1:]  # sample 0 at its knots
    assert data[0, 1] == 0  # channel 1 not observed yet
    assert data[3, 1] == batch.values[0, 2, 1]
    assert data[5, 0] == data[6, 0] == batch.values[0, 4, 0]
    values = torch.tensor([[[NAN], [1.0], [NAN], [NAN], [2.0]]], dtype=F64)
    assert fill_forward(values).flatten().tolist()[1:] == [1.0, 1.0, 1.0, 2.0]


def test_count_channels_count_each_channels_observations_so_far():
    _, batch = _batch()
    path = control_path(batch, "linear", time_channel=False, count_channels=True)
    assert path.channel_names == ("value 0", "value 1", "count 0", "count 1")
    counts = path.evaluate(batch.times)[..., 2:]
    assert torch.equal(counts, batch.mask.cumsum(dim=1).to(F64))
    assert counts[0, -1].tolist() == [6.0, 7.0]  # channel 0 missing at 2, 5, 6; channel 1 at 0, 3


def test_natural_spline_with_lengths_is_the_spline_through_the_real_knots():
    series, batch = _batch(missing=False)
    path = CubicPath.natural(batch.values, batch.times, lengths=batch.lengths)
    for b, n in enumerate(LENGTHS):
        ref = CubicPath.from_torchcde(
            torchcde.natural_cubic_coeffs(series[b].values[None], series[b].times), series[b].times
        )
        assert torch.allclose(path.coeffs[b, : n - 1], ref.coeffs[0], atol=1e-12)
        assert torch.equal(path.coeffs[b, n - 1 :, 1:], torch.zeros_like(path.coeffs[b, n - 1 :, 1:]))


def test_rectilinear_knots_are_the_observation_times_and_the_midpoints_between():
    times = torch.tensor([0.0, 1.0, 3.0], dtype=F64)
    path = RectilinearPath(torch.tensor([[[1.0], [2.0], [0.0]]], dtype=F64), times)
    assert path.times[0].tolist() == [0.0, 0.5, 1.0, 2.0, 3.0]
    assert path.jump_times()[0].tolist() == [0.5, 1.0, 2.0]
    assert path.evaluate(path.times)[0].tolist() == [[0.0, 1.0], [1.0, 1.0], [1.0, 2.0], [3.0, 2.0], [3.0, 0.0]]
    assert torch.equal(path.observation_times, times[None])


def _close_pair_batch(size: int = 2) -> tuple[IrregularBatch, torch.Tensor]:
    """Four series of scale 2 ($2 \\sin t$ plus noise 0.1) on jittered grids of step 0.5 over
    [0, 10], each with one cluster of `size` observations 3e-5 apart; returns the batch and `[B]`
    the position of each cluster's first observation (6 to 9)."""
    gen = torch.Generator().manual_seed(0)
    times = torch.linspace(0, 10, 21, dtype=F64) + 0.2 * torch.rand(4, 21, generator=gen, dtype=F64)
    rows, pair = torch.arange(4), torch.arange(6, 10)
    for k in range(1, size):
        times[rows, pair + k] = times[rows, pair + k - 1] + 3e-5
    values = 2 * torch.sin(times)[..., None] + 0.1 * torch.randn(4, 21, 1, generator=gen, dtype=F64)
    return IrregularBatch.from_padded(times, values), pair


@pytest.mark.parametrize("size, bound", [(2, 1.05), (3, 1.3), (4, 1.5)])
def test_the_default_path_stays_within_the_data_next_to_near_coincident_times(size, bound):
    """Backward differences start the interval after a 3e-5 gap with the secant over that gap
    (measured: 46-567x the data's largest value for a pair, 18-1102x for 3, 104-1025x for 4);
    the default limits that slope (measured at most 1.028x, 1.22x and 1.45x)."""
    batch, _ = _close_pair_batch(size)
    grid = batch.times[:, :1] + torch.linspace(0, 1, 20001, dtype=F64) * (batch.times[:, -1:] - batch.times[:, :1])
    largest = batch.values.abs().amax(dim=(1, 2))
    default, hermite = control_path(batch), control_path(batch, "hermite")
    assert bool((hermite.evaluate(grid)[..., 1].abs().amax(dim=1) > 10 * largest).all())
    assert bool((default.evaluate(grid)[..., 1].abs().amax(dim=1) <= bound * largest).all())
    assert default.kind == "limited_hermite"
    at_knots = default.evaluate(batch.times)
    assert torch.allclose(at_knots[..., 1:], batch.values, atol=1e-14, rtol=0)


def test_the_default_path_moves_no_more_than_the_data_next_to_near_coincident_times():
    """Total variation at most 1.2x the data's (measured 1.15x; with backward differences 17-175x);
    slope off the close pair at most 4 of the other secants (measured 2.9; 330-3500), and on it
    at most 1.6 of its own secant (a C^1 path from one value to the next peaks at 1.5: measured 1.4)."""
    batch, pair = _close_pair_batch()
    rows, times, x = torch.arange(4), batch.times, batch.values[..., 0]
    grid = times[:, :1] + torch.linspace(0, 1, 20001, dtype=F64) * (times[:, -1:] - times[:, :1])
    path = control_path(batch)
    moves = path.evaluate(grid)[..., 1].diff(dim=1).abs().sum(dim=1)
    assert bool((moves <= 1.2 * x.diff(dim=1).abs().sum(dim=1)).all())
    secants = x.diff(dim=1) / times.diff(dim=1)
    short = secants[rows, pair].clone()
    secants[rows, pair] = 0.0
    start, gap = times[rows, pair][:, None], (times[rows, pair + 1] - times[rows, pair])[:, None]
    on_pair = start + torch.linspace(0, 1, 101, dtype=F64) * gap
    off_pair = path.derivative(grid)[..., 1].abs().masked_fill((grid >= start) & (grid < start + gap), 0.0)
    assert bool((off_pair.amax(dim=1) <= 4 * secants.abs().amax(dim=1)).all())
    assert bool((path.derivative(on_pair)[..., 1].abs().amax(dim=1) <= 1.6 * short.abs()).all())


def test_the_limited_path_is_causal_where_its_limit_binds():
    batch, pair = _close_pair_batch()
    full = Series(batch.times[0], batch.values[0])
    for cut in (int(pair[0]) + 2, int(pair[0]) + 3):  # the limit binds at the knot after the pair
        short = Series(full.times[:cut], full.values[:cut])
        before, after = control_path(collate([short])), control_path(collate([full]))
        past = torch.linspace(float(full.times[0]), float(full.times[cut - 1]), 401, dtype=F64)[None, :-1]
        assert torch.equal(before.evaluate(past), after.evaluate(past))
        assert torch.equal(before.derivative(past), after.derivative(past))
    after_pair = int(pair[0]) + 1  # the interval that backward differences start too steeply
    hermite = CubicPath.hermite(batch.values, batch.times).coeffs[0, after_pair]
    assert not torch.equal(CubicPath.limited_hermite(batch.values, batch.times).coeffs[0, after_pair], hermite)


def test_the_limited_path_is_the_hermite_path_bit_for_bit_without_much_shorter_gaps():
    """Gaps within a factor 3 of each other never trigger the limit: torchcde's coefficients."""
    gen = torch.Generator().manual_seed(5)
    times = (0.5 + torch.rand(3, 30, generator=gen, dtype=F64)).cumsum(dim=1)  # gaps in [0.5, 1.5)
    values = torch.randn(3, 30, 2, generator=gen, dtype=F64)
    limited = CubicPath.limited_hermite(values, times).coeffs
    assert torch.equal(limited, CubicPath.hermite(values, times).coeffs)
    theirs = torchcde.hermite_cubic_coefficients_with_backward_differences(values[:1], times[0])
    assert torch.allclose(CubicPath.from_torchcde(theirs, times[0]).coeffs, limited[:1], atol=1e-12, rtol=0)


def test_the_limited_path_keeps_the_accuracy_of_backward_differences_on_smooth_functions():
    """Random uniform times put some gaps below a third of the ones before them, so the limit
    binds; the error against the closed form stays that of backward differences (measured 1.00x)."""
    f = lambda t: torch.stack([torch.sin(t), torch.exp(-t / 3) * torch.cos(2 * t)], dim=-1)  # noqa: E731
    gen = torch.Generator().manual_seed(2)
    times = (torch.rand(8, 60, generator=gen, dtype=F64) * 6).sort(dim=1).values
    grid = times[:, :1] + torch.linspace(0, 1, 4001, dtype=F64) * (times[:, -1:] - times[:, :1])
    limited, hermite = CubicPath.limited_hermite(f(times), times), CubicPath.hermite(f(times), times)
    assert int((limited.coeffs != hermite.coeffs).any(dim=-1).any(dim=-1).sum()) >= 8  # it binds
    errors = [(path.evaluate(grid) - f(grid)).abs() for path in (limited, hermite)]
    worst, mean = errors[0].amax() / errors[1].amax(), errors[0].mean() / errors[1].mean()
    assert 0.9 < float(worst) < 1.1 and 0.9 < float(mean) < 1.1


def test_the_limited_path_is_differentiable_in_the_values_where_its_limit_binds():
    batch, _ = _close_pair_batch()
    values = batch.values[:1, :12].clone().requires_grad_()
    times, query = batch.times[:1, :12], batch.times[:1, :11] + 0.1
    assert not torch.equal(CubicPath.limited_hermite(values, times).coeffs, CubicPath.hermite(values, times).coeffs)
    assert torch.autograd.gradcheck(lambda v: CubicPath.limited_hermite(v, times).evaluate(query), (values,))


def test_a_neural_cde_on_near_coincident_times_takes_as_many_steps_as_without_them():
    """Default NeuralCDE (float64, Tsit5 at rtol 1e-3): with backward differences the close pair
    cost 54-86 steps a sample against 20-21 without it; the default path costs 26-27."""
    batch, pair = _close_pair_batch()
    keep = torch.ones(4, 21, dtype=torch.bool)
    keep[torch.arange(4), pair + 1] = False
    without = collate([Series(batch.times[b][keep[b]], batch.values[b][keep[b]]) for b in range(4)])
    steps = []
    for data in (batch, without):
        torch.manual_seed(0)
        steps.append(NeuralCDE(1, 8, 1).double().run(data).stats.steps)  # raises if a solve fails
    assert bool((steps[0] >= steps[1]).all()) and bool((steps[0] <= 1.5 * steps[1]).all()), steps


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda b: control_path(b, "cubic"), r"`kind` must be one of 'linear', .* got 'cubic'"),
        (lambda b: control_path(b.values, "linear"), r"`batch` must be an IrregularBatch.* got Tensor"),
        (lambda b: control_path(b, "linear", fill="mean"), r"`fill` must be one of None, .* got 'mean'"),
        (lambda b: control_path(b, "rectilinear", time_channel=False), r"`time_channel` must be True for kind="),
        (lambda b: control_path(b, "linear", count_channels=1), r"`count_channels` must be True or False; got 1"),
        (lambda b: control_path(_one_time(), "linear"), r"`batch` must have T >= 2"),
        (lambda b: control_path(b, "hermite").evaluate(torch.zeros(4)), r"`t` must be .* B = 3; got shape \(4,\)"),
        (lambda b: CubicPath.natural(b.values, b.times, lengths=b.lengths + 5), r"`lengths` must lie in \[1, L = 9\]"),
    ],
)
def test_bad_arguments_raise_errors_that_name_them(call, message):
    _, batch = _batch()
    with pytest.raises(nct.InvalidInputError, match=message):
        call(batch)


def _one_time() -> IrregularBatch:
    return collate([Series(torch.tensor([0.5], dtype=F64), torch.ones(1, 2, dtype=F64))])

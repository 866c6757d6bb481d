"""The robustness instrument: test-time perturbations of irregular batches, robustness curves and
solver swaps of trained runs, and their figure."""

from __future__ import annotations

import math
import shutil

import pytest
import torch

from neuralct.data.series import IrregularBatch
from neuralct.errors import InvalidInputError
from neuralct.stability.perturbations import DropObservations, GaussianNoise, SaltAndPepper, TimeJitter, median_gap
from neuralct.stability.plots import plot_robustness
from neuralct.stability.robustness import robustness_curve, run_robustness, solver_swap
from neuralct.train.build import build_model
from neuralct.train.checkpoint import load_checkpoint
from neuralct.train.config import FitConfig
from neuralct.train.loop import evaluate
from neuralct.train.run import fit
from neuralct.train.splits import load_splits

SPIRALS = {"dataset": "spirals", "hidden": 8, "batch_size": 16, "dataset_options": {"size": 64, "length": 10}}


def irregular_batch(samples: int = 64, length: int = 50, channels: int = 3, seed: int = 0) -> IrregularBatch:
    """Variable lengths, irregular times and about 20% missing values."""
    generator = torch.Generator().manual_seed(seed)
    times = torch.rand(samples, length, generator=generator).add(0.2).cumsum(dim=1)
    values = torch.randn(samples, length, channels, generator=generator)
    values[torch.rand(values.shape, generator=generator) < 0.2] = math.nan
    values[:, 0] = torch.randn(samples, channels, generator=generator)  # no sample is empty
    lengths = torch.randint(length // 2, length + 1, (samples,), generator=generator)
    return IrregularBatch.from_padded(times, values, lengths=lengths, targets=torch.zeros(samples, dtype=torch.long))


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def gru_run(tmp_path_factory):
    """A GRU-Δt spiral classifier trained well above chance (about 0.8 test accuracy)."""
    run_dir = tmp_path_factory.mktemp("gru_delta") / "run"
    fit(FitConfig(model="gru_delta", epochs=15, lr=1e-2, **SPIRALS), run_dir)
    return run_dir


@pytest.fixture(scope="module")
def ode_rnn_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("ode_rnn") / "run"
    fit(FitConfig(model="ode_rnn", epochs=3, **SPIRALS), run_dir)
    return run_dir


def trained(run_dir):
    """The best model of a run and its test split."""
    config = FitConfig.from_file(run_dir / "config.json")
    splits = load_splits(config)
    model = build_model(config, splits.train)
    load_checkpoint(run_dir / "best.pt", model=model, restore_rng=False)
    return model, splits.test


def test_gaussian_noise_moves_observed_values_by_sigma_and_leaves_the_rest():
    batch = irregular_batch()
    noisy = GaussianNoise(0.3).apply(batch, seeded())
    change = noisy.values - batch.values
    assert isinstance(noisy, IrregularBatch) and torch.equal(noisy.mask, batch.mask)
    assert float(change[batch.mask].std()) == pytest.approx(0.3, rel=0.05)
    assert bool((change[~batch.mask] == 0).all())
    assert torch.equal(noisy.times, batch.times)


def test_salt_and_pepper_sets_that_fraction_to_the_channel_extremes():
    batch = irregular_batch()
    salted = SaltAndPepper(0.2).apply(batch, seeded())
    changed = salted.values != batch.values
    low = batch.values.masked_fill(~batch.mask, math.inf).amin(dim=(0, 1))
    high = batch.values.masked_fill(~batch.mask, -math.inf).amax(dim=(0, 1))
    extreme = (salted.values == low) | (salted.values == high)
    assert float(changed[batch.mask].float().mean()) == pytest.approx(0.2, abs=0.02)
    assert bool(extreme[changed].all()) and not bool(changed[~batch.mask].any())
    assert float((salted.values == high)[changed].float().mean()) == pytest.approx(0.5, abs=0.05)


def test_salt_and_pepper_uses_given_extremes():
    batch = irregular_batch()
    salted = SaltAndPepper(0.1, low=-5.0, high=5.0).apply(batch, seeded())
    changed = salted.values != batch.values
    assert set(salted.values[changed].unique().tolist()) == {-5.0, 5.0}


def test_drop_observations_removes_that_fraction_and_leaves_no_sample_empty():
    batch = irregular_batch()
    dropped = DropObservations(0.4).apply(batch, seeded())
    kept = int(dropped.mask.sum()) / int(batch.mask.sum())
    assert kept == pytest.approx(0.6, abs=0.02)
    assert bool(dropped.mask.flatten(1).any(dim=1).all()) and bool(dropped.observed[dropped.valid].all())
    for b in range(batch.batch_size):  # emptied positions go; the rest keep their times and a subset of values
        m = int(dropped.lengths[b])
        where = torch.searchsorted(batch.times[b].contiguous(), dropped.times[b, :m].contiguous())
        kept = dropped.mask[b, :m]
        assert bool((kept <= batch.mask[b, where]).all())
        assert torch.equal(dropped.values[b, :m][kept], batch.values[b, where][kept])


def test_drop_observations_never_empties_a_sample_with_one_observation():
    batch = IrregularBatch.from_padded(
        torch.arange(4.0), torch.tensor([[[1.0], [math.nan], [math.nan], [math.nan]], [[1.0], [2.0], [3.0], [4.0]]])
    )
    dropped = DropObservations(0.9).apply(batch, seeded())
    assert dropped.mask.flatten(1).sum(dim=1).tolist() == [1, 1]


def test_time_jitter_keeps_rows_strictly_increasing_and_observations_with_their_values():
    batch = irregular_batch()
    shaken = TimeJitter(2.0).apply(batch, seeded())  # so large that many neighbours swap
    assert bool((shaken.times.diff(dim=1) > 0).all())
    assert torch.equal(shaken.lengths, batch.lengths) and torch.equal(shaken.mask.sum(dim=1), batch.mask.sum(dim=1))
    assert torch.allclose(shaken.values.sum(dim=1), batch.values.sum(dim=1), atol=1e-5)
    assert not torch.equal(shaken.values, batch.values)


def test_time_jitter_moves_times_by_scale_times_the_median_gap():
    batch = irregular_batch()
    shaken = TimeJitter(0.05).apply(batch, seeded())
    relative = ((shaken.times - batch.times) / median_gap(batch).unsqueeze(1))[batch.valid]
    assert float(relative.std()) == pytest.approx(0.05, rel=0.1)


@pytest.mark.parametrize("zero", [GaussianNoise(0.0), SaltAndPepper(0.0), DropObservations(0.0), TimeJitter(0.0)])
def test_level_zero_leaves_the_batch_unchanged(zero):
    batch = irregular_batch()
    same = zero.apply(batch, seeded())
    for name in ("times", "values", "mask", "lengths"):
        assert torch.equal(getattr(same, name), getattr(batch, name)), name


@pytest.mark.parametrize(
    "perturbation", [GaussianNoise(0.2), SaltAndPepper(0.1), DropObservations(0.3), TimeJitter(0.5)]
)
def test_perturbations_are_deterministic_under_the_same_seed(perturbation):
    batch = irregular_batch()
    first, again, other = (perturbation.apply(batch, seeded(seed)) for seed in (3, 3, 4))
    assert torch.equal(first.times, again.times) and torch.equal(first.values, again.values)
    assert not (torch.equal(first.times, other.times) and torch.equal(first.values, other.values))


def test_robustness_curve_starts_at_the_clean_evaluation_and_noise_does_not_help(gru_run):
    model, test = trained(gru_run)
    clean = evaluate(model, test)
    perturbations = [GaussianNoise(sigma) for sigma in (0.25, 0.5, 1.0, 2.0)] + [TimeJitter(0.5)]
    rows = robustness_curve(model, test, perturbations, repeats=3)
    baseline, loudest = rows[0], rows[4]
    assert baseline["perturbation"] == "none" and baseline["level"] == 0.0
    assert (baseline["accuracy"], baseline["loss"]) == (clean.accuracy, clean.loss)
    assert [row["level"] for row in rows[1:]] == [0.25, 0.5, 1.0, 2.0, 0.5] and rows[5][
        "label"
    ] == "time jitter scale=0.5"
    assert baseline["accuracy"] > 0.7
    assert loudest["accuracy"] <= baseline["accuracy"] + 0.03 and loudest["loss"] > baseline["loss"]


def test_robustness_curve_averages_its_repeats_and_is_seeded(gru_run):
    model, test = trained(gru_run)
    noise = GaussianNoise(0.5)
    row = robustness_curve(model, test, [noise], repeats=2, seed=7)[1]
    generator = seeded(7)
    draws = [evaluate(model, noise.apply(test, generator)) for _ in range(2)]
    assert row["loss"] == pytest.approx((draws[0].loss + draws[1].loss) / 2, rel=1e-12)
    assert robustness_curve(model, test, [noise], repeats=2, seed=7)[1] == row


def test_robustness_curve_reports_mae_for_regression():
    batch = irregular_batch(samples=16, length=12, channels=2)
    batch = IrregularBatch(batch.times, batch.values, batch.mask, batch.lengths, targets=torch.randn(16))
    model = build_model(FitConfig(model="gru_delta", hidden=4), batch)
    rows = robustness_curve(model, batch, [DropObservations(0.5)])
    assert rows[0]["mae"] == evaluate(model, batch).mae and "accuracy" not in rows[0]
    assert rows[1]["mae"] > 0


def test_run_robustness_of_an_ode_rnn_run_gives_curves_and_solver_rows(ode_rnn_run):
    rk4 = FitConfig(solver="rk4").solve_options()
    report = run_robustness(
        ode_rnn_run,
        sigmas=(0.5,),
        fractions=(0.1,),
        drops=(0.5,),
        jitters=(0.5,),
        solvers={"natural": None, "rk4": rk4},
    )
    kinds = [row["perturbation"] for row in report["curves"]]
    assert kinds == ["none", "gaussian_noise", "salt_and_pepper", "drop_observations", "time_jitter"]
    natural, swapped = report["solvers"]
    assert (natural["label"], swapped["label"], swapped["numerics"]) == ("natural", "rk4", "RK4 + KnotToKnot")
    assert natural["error"] is None and swapped["error"] is None
    assert natural["accuracy"] == report["curves"][0]["accuracy"]
    assert 0.0 <= swapped["accuracy"] <= 1.0 and swapped["vf_evals"] > 0 and natural["vf_evals"] > 0


def test_solver_swap_reports_numerics_a_model_cannot_run(gru_run):
    model, test = trained(gru_run)
    rows = solver_swap(model, test, {"own": None, "rk4": FitConfig(solver="rk4").solve_options()})
    assert rows[0]["error"] is None and rows[0]["accuracy"] > 0.7
    assert rows[1]["accuracy"] is None and "no flow" in rows[1]["error"]


def test_plot_robustness_writes_a_png_and_an_svg(gru_run, tmp_path):
    model, test = trained(gru_run)
    perturbations = [GaussianNoise(0.5), GaussianNoise(1.0), SaltAndPepper(0.1), DropObservations(0.5), TimeJitter(0.5)]
    figure = plot_robustness(robustness_curve(model, test, perturbations), tmp_path / "robustness.svg")
    assert len(figure.axes) == 4
    assert (tmp_path / "robustness.png").stat().st_size > 10_000 and (tmp_path / "robustness.svg").exists()


@pytest.mark.parametrize(
    ("make", "named"),
    [
        (lambda: GaussianNoise(-0.1), "`sigma`"),
        (lambda: GaussianNoise(math.inf), "`sigma`"),
        (lambda: SaltAndPepper(1.0), "`fraction`"),
        (lambda: SaltAndPepper(0.1, low=1.0, high=0.0), "`low`"),
        (lambda: DropObservations(-0.2), "`fraction`"),
        (lambda: TimeJitter(math.nan), "`scale`"),
        (lambda: GaussianNoise(0.1).apply("batch", seeded()), "`batch`"),
        (lambda: plot_robustness([{"perturbation": "none", "level": 0.0, "accuracy": 1.0}]), "`curves`"),
    ],
)
def test_bad_perturbations_and_curves_are_refused_by_name(make, named):
    with pytest.raises(InvalidInputError, match=named):
        make()


def test_bad_robustness_curve_arguments_are_refused_by_name(gru_run):
    model, test = trained(gru_run)
    with pytest.raises(InvalidInputError, match="`repeats`"):
        robustness_curve(model, test, [GaussianNoise(0.1)], repeats=0)
    with pytest.raises(InvalidInputError, match=r"`perturbations\[1\]`"):
        robustness_curve(model, test, [GaussianNoise(0.1), 0.2])
    with pytest.raises(InvalidInputError, match="`choices`"):
        solver_swap(model, test, {})
    with pytest.raises(InvalidInputError, match="`sigmas`"):
        run_robustness(gru_run, sigmas=0.1)


def test_run_robustness_refuses_a_folder_without_best_pt(gru_run, tmp_path):
    shutil.copy(gru_run / "config.json", tmp_path / "config.json")
    with pytest.raises(InvalidInputError, match="best.pt"):
        run_robustness(tmp_path)
    with pytest.raises(InvalidInputError, match="config.json"):
        run_robustness(tmp_path / "missing")

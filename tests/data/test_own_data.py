"""A user's own series through `neuralct fit` and `evaluate`: `.ts`, long CSV and `.npz` files,
the splits they imply, the labels mapped back, and bad files refused in one line with nothing
left behind."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from neuralct.cli import main
from neuralct.data import from_arrays, read_series_file, write_series_file
from neuralct.train.config import FitConfig
from neuralct.train.splits import TEST_FRACTION, ClassOnlyInTestWarning, load_splits

FLAGS = ["--model", "gru_delta", "--hidden", "4", "--epochs", "2", "--batch-size", "8"]
LABELS = ("walk", "run", "jump")


def _gestures(count: int, seed: int, *, classes: int = 3) -> tuple:
    """`count` unequal-length, 2-channel series with missing values, irregular times, 3 labels."""
    rng = np.random.default_rng(seed)
    times, values, labels = [], [], []
    for index in range(count):
        label = index % classes
        length = int(rng.integers(5, 12))
        t = np.cumsum(rng.uniform(0.2, 1.0, length))
        x = np.stack([np.sin((label + 1) * t), np.cos((label + 1) * t)], axis=1) + 0.1 * rng.normal(size=(length, 2))
        dropped = rng.random((length, 2)) < 0.2
        dropped[:, 0] &= ~dropped[:, 1]  # every row keeps a value: no position is removed on reading
        x[dropped] = np.nan
        times.append(t)
        values.append(x)
        labels.append(label)
    return from_arrays(times, values, np.array(labels)), LABELS[:classes]


def _fit(tmp_path: Path, *flags: str) -> tuple[int, Path]:
    run = tmp_path / "run"
    return main(["fit", *FLAGS, *flags, "--out", str(run)]), run


@pytest.mark.parametrize("suffix", [".ts", ".csv", ".npz"])
def test_fit_and_evaluate_on_a_train_and_a_test_file(tmp_path: Path, suffix: str, capsys) -> None:
    train, classes = _gestures(24, 0)
    test, _ = _gestures(9, 1)
    for name, batch in (("train", train), ("test", test)):
        write_series_file(batch, tmp_path / f"{name}{suffix}", classes=classes)
    code, run = _fit(
        tmp_path, "--data", str(tmp_path / f"train{suffix}"), "--test-data", str(tmp_path / f"test{suffix}")
    )
    assert code == 0
    result = json.loads((run / "result.json").read_text())
    record = json.loads((run / "data.json").read_text())
    assert sorted(record["classes"]) == sorted(classes) and record["task"] == "classification"
    assert record["test_ids"] is None and len(record["files"]) == 2
    assert json.loads((run / "config.json").read_text())["missing"] is None  # a file's default: nothing dropped
    capsys.readouterr()
    assert main(["evaluate", str(run)]) == 0
    assert json.loads(capsys.readouterr().out) == result  # the same test series, labels and statistics


def test_a_csv_split_column_chooses_the_test_series(tmp_path: Path) -> None:
    batch, classes = _gestures(30, 2)
    split = ["test" if index % 5 == 0 else "train" for index in range(30)]
    write_series_file(batch, tmp_path / "all.csv", classes=classes, split=split)
    config = FitConfig(data=str(tmp_path / "all.csv"))
    splits = load_splits(config)
    assert splits.test.batch_size == 6 and splits.train.batch_size + splits.val.batch_size == 24
    code, run = _fit(tmp_path, "--data", str(tmp_path / "all.csv"))
    assert code == 0 and json.loads((run / "result.json").read_text())["test_failed"] == 0


def test_a_file_without_a_test_split_gets_a_seeded_stratified_one_that_evaluate_reuses(tmp_path: Path, capsys) -> None:
    batch, classes = _gestures(30, 3)
    write_series_file(batch, tmp_path / "all.npz", classes=classes)
    code, run = _fit(tmp_path, "--data", str(tmp_path / "all.npz"), "--seed", "4")
    assert code == 0
    test_ids = json.loads((run / "data.json").read_text())["test_ids"]
    per_class = [sum(int(i) % 3 == k for i in test_ids) for k in range(3)]
    assert per_class == [round(TEST_FRACTION * 10)] * 3  # stratified: 2 of each class's 10
    other = load_splits(FitConfig(data=str(tmp_path / "all.npz"), seed=5)).record.test_ids
    assert other != tuple(test_ids)  # the draw follows the seed
    capsys.readouterr()
    assert main(["evaluate", str(run)]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads((run / "result.json").read_text())


def test_string_and_numeric_labels_map_to_indices_and_back(tmp_path: Path) -> None:
    batch, _ = _gestures(12, 4)
    write_series_file(batch, tmp_path / "train.csv", classes=("52", "7", "10"))
    splits = load_splits(FitConfig(data=str(tmp_path / "train.csv"), test_data=str(tmp_path / "train.csv")))
    assert splits.record.classes == ("7", "10", "52")  # numeric labels in numeric order
    loaded = read_series_file(tmp_path / "train.csv")
    assert [loaded.classes[k] for k in loaded.batch.targets.tolist()] == [("52", "7", "10")[k] for k in batch.targets]


def test_a_class_only_in_the_test_file_warns_and_gets_its_own_index(tmp_path: Path) -> None:
    train, _ = _gestures(12, 5, classes=2)
    test, _ = _gestures(6, 6, classes=3)
    write_series_file(train, tmp_path / "train.ts", classes=LABELS[:2])
    write_series_file(test, tmp_path / "test.ts", classes=LABELS)
    config = FitConfig(data=str(tmp_path / "train.ts"), test_data=str(tmp_path / "test.ts"))
    with pytest.warns(ClassOnlyInTestWarning, match="'jump'.*test split only"):
        splits = load_splits(config)
    assert splits.record.classes == LABELS
    assert sorted(set(splits.test.targets.tolist())) == [0, 1, 2]


def test_normalization_is_fitted_on_training_series_and_stored(tmp_path: Path) -> None:
    batch, classes = _gestures(20, 7)
    write_series_file(batch, tmp_path / "all.csv", classes=classes)
    config = FitConfig(data=str(tmp_path / "all.csv"), normalize="robust")
    splits = load_splits(config)
    assert splits.record.normalization["scale"] == "robust"
    again = load_splits(config, saved=splits.record)
    assert torch.equal(again.test.values, splits.test.values)
    with pytest.raises(Exception, match="`normalization` must be one of"):
        load_splits(config.replace(normalize="minmax"))


def test_a_forecasting_file_validates_on_the_last_stretch_of_time(tmp_path: Path) -> None:
    for name, first in (("train", 0), ("test", 60)):
        starts = (first + np.arange(40)) * 5.0  # windows of 8 points every 5 time units: neighbours overlap
        times = [start + np.arange(8.0) for start in starts]
        batch = from_arrays(times, [np.sin(t / 7)[:, None] for t in times], np.sin((starts + 9) / 7))
        write_series_file(batch, tmp_path / f"{name}.npz")
    config = FitConfig(data=str(tmp_path / "train.npz"), test_data=str(tmp_path / "test.npz"), task="forecasting")
    splits = load_splits(config)
    assert splits.record.task == "forecasting"
    assert splits.val.times[:, 0].tolist() == [5.0 * k for k in range(34, 40)]  # the last 15% of the 40 windows
    assert splits.train.batch_size == 40 - 6 - 1  # the one window reaching into the validation period left out
    train_last = splits.train.times.gather(1, (splits.train.lengths - 1)[:, None]).max()
    assert train_last < splits.val.times[:, 0].min()
    random = load_splits(config.replace(task="regression"))
    assert random.train.batch_size == 34  # a random validation draw keeps every other window


def _csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


BAD_FILES = [
    ("empty.csv", "", "empty"),
    ("ragged.csv", "id,time,x,target\na,0,1,0\na,1,2\n", "line 3"),
    ("word.csv", "id,time,x,target\na,0,1,0\na,1,high,0\n", "line 3"),
    ("backwards.csv", "id,time,x,target\na,0,1,0\na,2,1,0\na,1,1,0\n", "line 4"),
    ("target.csv", "id,time,x,target\na,0,1,0\na,1,2,1\n", "'a'"),
    ("unobserved.csv", "id,time,x,target\na,0,1,0\na,1,2,0\nb,0,,1\n", "'b'"),
    ("wide.csv", "id,x0,x1,x2,target\na,1,2,3,0\n", "id,time"),
    ("data.xlsx", "whatever", ".xlsx"),
]


@pytest.mark.parametrize("name, text, where", BAD_FILES, ids=[name for name, _, _ in BAD_FILES])
def test_a_bad_file_fails_in_one_line_naming_it_and_leaves_no_run_folder(
    tmp_path: Path, capsys, name: str, text: str, where: str
) -> None:
    path = _csv(tmp_path / name, text)
    code, run = _fit(tmp_path, "--data", str(path))
    err = capsys.readouterr().err.strip()
    assert code == 2 and not run.exists()
    assert err.startswith("neuralct: error: ") and "\n" not in err
    assert name in err and where in err


def test_a_missing_data_file_and_a_dataset_beside_data_are_refused(tmp_path: Path, capsys) -> None:
    code, run = _fit(tmp_path, "--data", str(tmp_path / "nothing.csv"))
    assert code == 2 and "no such file" in capsys.readouterr().err and not run.exists()
    code, _ = _fit(tmp_path, "--data", "x.csv", "--dataset", "spirals")
    assert code == 2 and "give `dataset` or `data`, not both" in capsys.readouterr().err
    code, _ = _fit(tmp_path, "--test-data", "x.csv")
    assert code == 2 and "`test_data` goes with a `data` file" in capsys.readouterr().err


def test_loading_warns_nowhere_for_clean_files(tmp_path: Path) -> None:
    batch, classes = _gestures(20, 8)
    write_series_file(batch, tmp_path / "all.csv", classes=classes)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_splits(FitConfig(data=str(tmp_path / "all.csv")))


def test_fit_takes_batches_from_python_and_the_run_folder_keeps_them(tmp_path: Path, capsys) -> None:
    from neuralct.train import fit

    train, _ = _gestures(20, 9)
    test, _ = _gestures(6, 10)
    config = FitConfig(model="gru_delta", hidden=4, epochs=1, batch_size=8)
    result = fit(config, tmp_path / "run", data=(train, test))
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["dataset"] is None and saved["data"].endswith("data/train.npz")
    back = read_series_file(saved["test_data"]).batch
    assert torch.equal(back.values, test.values) and torch.equal(back.targets, test.targets)
    assert main(["evaluate", str(tmp_path / "run")]) == 0  # from the command line, later
    assert json.loads(capsys.readouterr().out) == result

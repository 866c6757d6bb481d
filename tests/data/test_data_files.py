"""Series files in and out: .ts, long CSV and .npz round-trip, real archive files read right, bad files named."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import torch

from neuralct.data import (
    DataFileError,
    IrregularBatch,
    from_arrays,
    label_order,
    read_series_file,
    save_npz,
    write_series_file,
)
from neuralct.data.datasets._common import wheel_file
from neuralct.errors import InvalidInputError

needs_aeon = pytest.mark.skipif(
    importlib.util.find_spec("aeon") is None, reason="the aeon wheel (UEA data) is not installed: run `make datasets`"
)
FORMATS = [".ts", ".csv", ".npz"]


def _irregular_batch(regression: bool) -> IrregularBatch:
    """Four series of lengths 5, 3, 7, 4 in 3 channels, irregular float times, a missing value at
    about one entry in four (never a whole position), targets of 3 classes or floats."""
    generator = torch.Generator().manual_seed(0)
    times, values = [], []
    for length in (5, 3, 7, 4):
        times.append(torch.rand(length, generator=generator).add(0.05).cumsum(0) - 0.3)
        rows = torch.randn(length, 3, generator=generator)
        hidden = torch.rand(length, 3, generator=generator) < 0.25
        hidden[:, 0] = False  # channel 0 observed everywhere: no position is left empty
        values.append(rows.masked_fill(hidden, float("nan")))
    targets = torch.tensor([0.25, -1.5, 3.0, 0.125]) if regression else torch.tensor([2, 0, 1, 2])
    return from_arrays(times, values, targets)


def _assert_same_batch(read: IrregularBatch, written: IrregularBatch) -> None:
    for name in ("times", "values", "mask", "lengths", "targets"):
        got, expected = getattr(read, name), getattr(written, name)
        assert got.dtype == expected.dtype and torch.equal(got, expected), name


@pytest.mark.parametrize("suffix", FORMATS)
def test_a_class_batch_round_trips_through_every_format(tmp_path: Path, suffix: str) -> None:
    batch = _irregular_batch(regression=False)
    assert int((~batch.mask[batch.valid]).sum()) > 0  # the round trip covers missing values
    classes = ("low", "mid", "high")  # not sorted: the file must keep this order
    path = write_series_file(batch, tmp_path / f"walk{suffix}", classes=classes)
    # A CSV carries no class list: the reader is given the order, as a test file gets the train file's.
    read = read_series_file(path, classes=classes if suffix == ".csv" else None)
    _assert_same_batch(read.batch, batch)
    assert read.classes == classes and read.task == "classification"


@pytest.mark.parametrize("suffix", FORMATS)
def test_a_regression_batch_round_trips_through_every_format(tmp_path: Path, suffix: str) -> None:
    batch = _irregular_batch(regression=True)
    read = read_series_file(write_series_file(batch, tmp_path / f"rate{suffix}"))
    _assert_same_batch(read.batch, batch)
    assert read.classes is None and read.task == "regression"


@pytest.mark.parametrize("suffix", [".csv", ".npz"])
def test_names_and_split_survive_csv_and_npz(tmp_path: Path, suffix: str) -> None:
    batch = _irregular_batch(regression=False)
    split = ("train", "test", "train", "test")
    path = write_series_file(batch, tmp_path / f"named{suffix}", channels=["hr", "temp", "spo2"], split=split)
    read = read_series_file(path)
    assert read.channels == ("hr", "temp", "spo2") and read.split == split and read.ids == ("0", "1", "2", "3")
    test = read.select("test")
    _assert_same_batch(test.batch, batch.select([1, 3]))
    assert test.ids == ("1", "3") and test.split == ("test", "test")
    assert save_npz(read, tmp_path / "again.npz") == tmp_path / "again.npz"
    assert read_series_file(tmp_path / "again.npz").split == split


def test_ts_on_the_index_grid_is_written_without_timestamps_and_time_scale_multiplies(tmp_path: Path) -> None:
    batch = from_arrays(None, [np.array([1.0, 2.0, np.nan]), np.array([3.0, 4.0])], [1, 0])
    path = write_series_file(batch, tmp_path / "Plain.TS")  # the extension in any case
    assert "@timeStamps false" in path.read_text()
    read = read_series_file(path, time_scale=0.5)
    assert read.batch.times[0, :2].tolist() == [0.0, 0.5] and read.batch.lengths.tolist() == [2, 2]


def test_a_csv_saved_with_a_byte_order_mark_reads_its_header(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes("id,time,x,target\na,0,1,c\na,1,2,c\n".encode("utf-8-sig"))
    assert read_series_file(path).batch.values[0, :, 0].tolist() == [1.0, 2.0]


def test_rows_with_nothing_observed_are_removed_and_their_times_with_them(tmp_path: Path) -> None:
    path = tmp_path / "gaps.csv"
    path.write_text("id,time,x,y,target\na,0.0,1,,c\na,0.5,,,c\nb,1.0,,,d\na,2.0,3,4,c\nb,1.5,5,6,d\n")
    read = read_series_file(path)
    assert read.batch.lengths.tolist() == [2, 1]  # ids keep the order in which they first appear
    assert read.batch.times[0].tolist() == [0.0, 2.0] and read.batch.times[1, 0] == 1.5
    assert read.batch.values[0].tolist() == [[1.0, 0.0], [3.0, 4.0]] and read.batch.mask[0, 0].tolist() == [1, 0]


@needs_aeon
def test_the_pickup_gesture_archive_file_reads_with_its_series_lengths_and_classes() -> None:
    path = wheel_file("aeon", "datasets", "data", "PickupGestureWiimoteZ", "PickupGestureWiimoteZ_TRAIN.ts")
    text = path.read_text()
    data = [line for line in text.split("@data", 1)[1].splitlines() if line.strip()]
    lengths = [len(line.rsplit(":", 1)[0].split(",")) for line in data]
    labels = [line.rsplit(":", 1)[1].strip() for line in data]
    read = read_series_file(path)
    assert read.batch.batch_size == len(data) == 50 and len(set(lengths)) > 10  # unequal lengths
    assert read.batch.lengths.tolist() == lengths
    assert read.classes == tuple(str(k) for k in range(1, 11))  # the header's order, 10 before 2 not allowed
    assert [read.classes[i] for i in read.batch.targets.tolist()] == labels
    first = [float(v) for v in data[0].rsplit(":", 1)[0].split(",")]
    assert read.batch.values[0, : lengths[0], 0].tolist() == torch.tensor(first).tolist()


@needs_aeon
def test_date_time_stamps_are_seconds_since_the_earliest_in_the_file() -> None:
    path = wheel_file("aeon", "datasets", "data", "UnitTest", "UnitTestTimeStamps_TRAIN.ts")
    read = read_series_file(path)
    start = datetime(2007, 1, 1)
    second = (datetime(2007, 1, 1, 1, 36) - start).total_seconds()
    assert read.batch.times[0].tolist() == [0.0, 60.0, 120.0, 180.0]
    assert read.batch.times[1].tolist() == [second + k * 60.0 for k in range(4)]
    assert read.batch.values[0, :, 0].tolist() == torch.tensor([241.97, 241.75, 241.64, 241.71]).tolist()


def test_ts_timestamps_may_differ_between_dimensions(tmp_path: Path) -> None:
    path = tmp_path / "Stamped.ts"
    path.write_text("@timeStamps true\n@dimensions 2\n@targetLabel true\n@data\n(0,1),(2,3):(1,5),(2,?):0.5\n")
    read = read_series_file(path)
    assert read.batch.times[0].tolist() == [0.0, 1.0, 2.0] and read.task == "regression"
    assert read.batch.mask[0].tolist() == [[True, False], [False, True], [True, False]]


def _csv(text: str) -> Callable[[Path], None]:
    return lambda path: path.write_text(text)


def _npz(**arrays: object) -> Callable[[Path], None]:
    good = {"times": np.arange(4.0), "values": np.ones((4, 2)), "offsets": np.array([0, 2, 4]), "targets": [1, 2]}
    return lambda path: np.savez(path, **{k: v for k, v in {**good, **arrays}.items() if v is not None})


def _npy(path: Path, array: np.ndarray) -> None:
    """A lone .npy array under an .npz name."""
    with path.open("wb") as handle:
        np.save(handle, array)


HEADER = "id,time,x,target\n"
BAD_FILES = [
    ("ragged.csv", _csv(HEADER + "a,0,1,c\na,1,2\n"), ["line 3", "expected 4 fields"]),
    ("text.csv", _csv(HEADER + "a,0,1,c\na,1,high,c\n"), ["line 3", "'x'", "'high'"]),
    ("back.csv", _csv(HEADER + "a,0,1,c\nb,0,1,d\na,0,2,c\n"), ["line 4", "id 'a'", "after 0"]),
    ("relabel.csv", _csv(HEADER + "a,0,1,c\na,1,2,d\n"), ["line 3", "id 'a'", "'d' differs from 'c'"]),
    ("resplit.csv", _csv("id,time,x,target,split\na,0,1,c,train\na,1,2,c,test\n"), ["line 3", "id 'a'", "split"]),
    ("badsplit.csv", _csv("id,time,x,target,split\na,0,1,c,val\n"), ["line 2", "'train' or 'test'"]),
    ("empty_id.csv", _csv(HEADER + "a,0,,c\na,1,,c\nb,0,1,d\nb,1,2,d\n"), ["id 'a' (line 2)", "no"]),
    ("empty.csv", _csv(""), ["empty"]),
    ("header_only.csv", _csv(HEADER), ["found none"]),
    ("wide.csv", _csv("id,x0,x1,x2,target\na,1,2,3,c\n"), ["line 1", "id,time,<channel columns...>,target[,split]"]),
    ("one_row_each.csv", _csv(HEADER + "a,0,1,c\nb,0,2,d\n"), ["every id has one row", "id,time,"]),
    ("no_target.csv", _csv("id,time,x,label\na,0,1,c\n"), ["line 1", "'target'", "'label'"]),
    ("series.txt", _csv(HEADER), ["'.txt'", "'.csv'", "'.npz'", "'.ts'"]),
    ("no_offsets.npz", _npz(offsets=None), ["missing ['offsets']"]),
    ("offsets.npz", _npz(offsets=np.array([0, 3, 2])), ["`offsets`", "from 0 to len(times) = 4"]),
    ("targets.npz", _npz(targets=[1, 2, 3]), ["`targets`", "(2,)"]),
    ("objects.npz", _npz(ids=np.array(["a", None], dtype=object)), ["allow_pickle"]),
    ("array.npz", lambda path: _npy(path, np.ones(3)), ["expected an npz archive"]),
    ("dims.ts", _csv("@dimensions 2\n@classLabel true a\n@data\n1,2:3:a\n1:a\n"), ["line 5", "expected 2 dimension"]),
    ("value.ts", _csv("@classLabel true a\n@data\n1,2:a\n1,two:a\n"), ["line 4", "numbers or '?'"]),
    ("stamps.ts", _csv("@timeStamps true\n@classLabel true a\n@data\n(1,2),(0,3):a\n"), ["line 4", "increasing"]),
]


@pytest.mark.parametrize(("name", "write", "fragments"), BAD_FILES, ids=[name for name, *_ in BAD_FILES])
def test_a_bad_file_raises_one_line_naming_the_file_and_the_place(
    tmp_path: Path, name: str, write: Callable[[Path], None], fragments: list[str]
) -> None:
    path = tmp_path / name
    write(path)
    with pytest.raises(DataFileError) as caught:
        read_series_file(path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message
    for fragment in fragments:
        assert fragment in message


def test_a_label_outside_the_given_classes_names_the_file_the_series_and_the_label(tmp_path: Path) -> None:
    path = tmp_path / "test.csv"
    path.write_text(HEADER + "a,0,1,walk\na,1,2,walk\nb,0,1,swim\nb,1,1,swim\n")
    with pytest.raises(DataFileError, match=r"test.csv: id 'b' \(line 4\): label 'swim' is not among the classes"):
        read_series_file(path, classes=("run", "walk"))


def test_arguments_out_of_place_raise_named_errors(tmp_path: Path) -> None:
    path = write_series_file(_irregular_batch(regression=False), tmp_path / "ok.npz")
    for options, message in [
        ({"task": "forecast"}, "`task` must be one of"),
        ({"time_scale": 0.0}, "`time_scale` must be a positive finite number"),
        ({"target": "label"}, "`target` names a CSV column"),
        ({"task": "regression", "classes": ("a",)}, "`classes` applies to classification"),
    ]:
        with pytest.raises(InvalidInputError, match=message):
            read_series_file(path, **options)
    with pytest.raises(DataFileError, match="a .ts file holds one split"):
        write_series_file(read_series_file(path), tmp_path / "x.ts", split=["train"] * 4)
    with pytest.raises(InvalidInputError, match="must give 'train' or 'test' for each of the 4 series"):
        write_series_file(read_series_file(path), tmp_path / "x.csv", split=["train"])


@pytest.mark.parametrize(
    ("labels", "order"),
    [
        (["10", "2", "1", "2"], ("1", "2", "10")),  # numbers by value, not as text ("10" < "2")
        (["-0.5", "3", "1e1"], ("-0.5", "3", "1e1")),
        (["walk", "Run", "sit", "10"], ("10", "Run", "sit", "walk")),  # not all numbers: as strings
    ],
)
def test_label_order_sorts_numbers_by_value_and_words_as_strings(labels: list[str], order: tuple[str, ...]) -> None:
    assert label_order(labels) == order


def test_class_indices_follow_the_numeric_order_and_the_ts_header_order(tmp_path: Path) -> None:
    csv_path = tmp_path / "gestures.csv"
    csv_path.write_text(HEADER + "".join(f"s{k},0,1,{label}\ns{k},1,2,{label}\n" for k, label in enumerate([10, 2, 1])))
    read = read_series_file(csv_path)
    assert read.classes == ("1", "2", "10") and read.batch.targets.tolist() == [2, 1, 0]
    ts_path = tmp_path / "Declared.ts"
    ts_path.write_text("@classLabel true b a c\n@data\n1,2:a\n3,4:c\n5:b\n")
    read = read_series_file(ts_path)
    assert read.classes == ("b", "a", "c") and read.batch.targets.tolist() == [1, 2, 0]


@pytest.mark.parametrize(
    ("targets", "task"), [(["1", "2"], "classification"), (["a", "7"], "classification"), (["1", "2.5"], "regression")]
)
def test_csv_task_is_classification_for_integers_and_words_else_regression(
    tmp_path: Path, targets: list[str], task: str
) -> None:
    path = tmp_path / "task.csv"
    path.write_text(HEADER + "".join(f"s{k},0,1,{label}\ns{k},1,2,{label}\n" for k, label in enumerate(targets)))
    read = read_series_file(path)
    assert read.task == task
    assert read.batch.targets.dtype == (torch.long if task == "classification" else torch.get_default_dtype())


def test_from_arrays_builds_times_from_the_step_or_takes_them() -> None:
    values = [np.array([1.0, np.nan, 3.0]), np.array([4.0, 5.0])]  # [T_i]: one channel
    batch = from_arrays(None, values, targets=[1, 0], time_step=0.5)
    assert batch.times.tolist() == [[0.0, 0.5, 1.0], [0.0, 0.5, 1.0]] and batch.channels == 1
    assert batch.targets.dtype == torch.long and batch.mask[:, :, 0].tolist() == [[1, 0, 1], [1, 1, 0]]
    given = from_arrays([torch.tensor([0.1, 0.2, 0.7]), np.array([2.0, 3.0])], values, targets=np.array([0.5, 1.5]))
    assert given.times[0].tolist() == torch.tensor([0.1, 0.2, 0.7]).tolist() and given.times[1, :2].tolist() == [2, 3]
    assert given.targets.dtype == torch.get_default_dtype() and given.values.dtype == torch.get_default_dtype()
    masked = from_arrays(None, [np.ones((2, 2))], mask=[np.array([[True, False], [True, True]])])
    assert masked.mask[0].tolist() == [[True, False], [True, True]] and masked.targets is None


@pytest.mark.parametrize(
    ("times", "values", "options", "message"),
    [
        (None, [], {}, "`values` must be a non-empty list"),
        (None, [np.ones((2, 2)), np.ones((2, 3))], {}, r"`values\[1\]` must have the C = 2 channels"),
        ([np.array([0.0, 0.0])], [np.ones(2)], {}, r"`times\[0\]` must be finite and strictly increasing"),
        ([np.array([1e9, 1e9 + 1])], [np.ones(2)], {}, r"strictly increasing in torch.float32"),
        (None, [np.ones(2)], {"targets": ["a"]}, "`targets` must be numbers"),
        (None, [np.ones(2)], {"time_step": 0}, "`time_step` must be a positive finite number"),
    ],
)
def test_from_arrays_names_the_argument_at_fault(times, values, options: dict, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        from_arrays(times, values, **options)

"""Fit your own series: from a long-format CSV a user would have to a trained model and its evaluation.

The data are real: the Wiimote pick-up gestures of the UCR archive (`PickupGestureWiimoteZ`, 10
gestures, acceleration along z, 29-361 samples per gesture), as the `aeon` wheel ships them. They
are first written as the CSV a researcher would export from a spreadsheet or a database: one row
per observation, with the columns `id`, `time` (seconds), `z`, `gesture` (the label, 1..10) and
`split`. Then the same file is fitted twice, with no further code:

- by the command line: `neuralct fit --data gestures.csv --target gesture ...` and
  `neuralct evaluate RUN_DIR`;
- from Python: `FitConfig(data=..., target="gesture")` and `neuralct.train.fit`, which writes the
  same run folder (checkpoints, metrics, plots, `data.json`) and can be resumed and evaluated.

    python examples/own_data.py            # 60 epochs each (a few minutes on 2 cores)
    python examples/own_data.py --small    # CI-sized: seconds
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

from neuralct.data import read_series_file
from neuralct.data.datasets._common import wheel_file
from neuralct.train import evaluate_run, fit
from neuralct.train.config import FitConfig

SAMPLE_RATE = 30.0  # samples per second of the gesture recordings, as the time column's unit


def write_gestures_csv(path: Path, *, drop_every: int = 0) -> int:
    """The gestures as a long CSV (`id,time,z,gesture,split`); with `drop_every` k, every k-th
    row of a series is left out (an irregular export). Returns the number of rows written."""
    rows = 0
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "time", "z", "gesture", "split"])
        for split in ("train", "test"):
            source = read_series_file(wheel_file("aeon", "datasets", "data", "PickupGestureWiimoteZ", _ts(split)))
            for index, (labels, batch) in enumerate(_series(source)):
                for k, (t, z) in enumerate(batch):
                    if drop_every and k % drop_every == drop_every - 1:
                        continue
                    writer.writerow([f"{split}-{index}", f"{t / SAMPLE_RATE:.4f}", f"{z:.6g}", labels, split])
                    rows += 1
    return rows


def _ts(split: str) -> str:
    return f"PickupGestureWiimoteZ_{split.upper()}.ts"


def _series(source):
    """(label, [(time index, value), ...]) per series of a loaded file (observed values only)."""
    batch = source.batch
    for b in range(batch.batch_size):
        length = int(batch.lengths[b])
        points = [
            (float(batch.times[b, k]), float(batch.values[b, k, 0])) for k in range(length) if bool(batch.mask[b, k, 0])
        ]
        yield source.classes[int(batch.targets[b])], points


def main(argv: list[str] | None = None) -> dict:
    """Write the CSV, fit it by the command line and from Python, and return both test results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="CI-sized: 1 epoch, 8 hidden units")
    parser.add_argument("--out", type=Path, help="folder for the CSV and the run folders (default: a temporary one)")
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="own_data-"))
    out.mkdir(parents=True, exist_ok=True)
    epochs, hidden = ("1", "8") if args.small else ("60", "32")
    data = out / "gestures.csv"
    rows = write_gestures_csv(data, drop_every=3)
    print(f"{data}: {rows} rows")

    # 1. The command line: the CSV's split column gives the test series; validation is 15% of the rest.
    command = [sys.executable, "-m", "neuralct", "fit", "--data", str(data), "--target", "gesture"]
    command += ["--model", "gru_d", "--hidden", hidden, "--epochs", epochs, "--batch-size", "8", "--lr", "0.01"]
    command += ["--normalize", "robust", "--quiet"]
    subprocess.run([*command, "--out", str(out / "cli-run")], check=True)
    evaluated = subprocess.run(
        [sys.executable, "-m", "neuralct", "evaluate", str(out / "cli-run"), "--quiet"],
        check=True,
        capture_output=True,
        text=True,
    )
    by_cli = json.loads(evaluated.stdout)

    # 2. Python: the same keys as a FitConfig, the same run folder.
    config = FitConfig(
        data=str(data),
        target="gesture",
        model="gru_d",
        hidden=int(hidden),
        epochs=int(epochs),
        batch_size=8,
        lr=0.01,
        normalize="robust",
    )
    by_python = fit(config, out / "python-run")
    assert by_python == evaluate_run(out / "python-run")  # the folder re-scores to its own result
    classes = json.loads((out / "python-run" / "data.json").read_text())["classes"]
    print(f"classes (index -> label): {classes}")
    print(f"test accuracy: command line {by_cli['test_accuracy']:.3f}, Python {by_python['test_accuracy']:.3f}")
    return {"cli": by_cli, "python": by_python, "rows": rows, "classes": classes, "out": str(out)}


if __name__ == "__main__":
    result = main()
    assert math.isfinite(result["python"]["test_loss"])

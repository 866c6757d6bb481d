"""Long real series: neuralct's models next to 1-NN (Euclidean, DTW) and MiniRocket, 0% and 50% dropped.

`python -m benchmarks.long_series [--datasets ...] [--models ...] [--missing 0 0.5] [--epochs N]
[--small] [--output DIR]`. For each dataset and missing rate, the baselines (`long_baselines`)
and each model configuration of `MODELS` (trained by `neuralct.train.fit` into a run folder under
`<output>/long-series-runs/`) are scored on the published test split, with the same dropped
observations: `load(name, split, missing_rate=r, seed=seed)`. Writes
`<output>/long-series-<machine>.md` (a table per dataset) and `.json` (every number).
`--small` is the CI size: a few short series, one epoch, seconds. A model or solver that is not
registered (yet) is skipped with a note, so the harness runs on any checkout.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from benchmarks import long_baselines as baselines
from benchmarks.report import machine_info, machine_name
from neuralct import registry
from neuralct.data import IrregularBatch
from neuralct.data.datasets import load
from neuralct.train import fit
from neuralct.train.config import FitConfig

DATASETS = ("acsf1", "osu_leaf", "pickup_gesture")
RESULTS = Path(__file__).parent / "results"
# FitConfig keys of each model configuration, over the dataset, missing rate, epochs and seed.
RECIPE = {"hidden": 96, "lr": 0.004, "model_options": {"readout": "mean", "depth": 4, "dropout": 0.1}}
MODELS: dict[str, dict] = {
    "gru_d": {"model": "gru_d"},
    "ncde": {"model": "ncde"},
    # The log-ODE rows of the docs page: windows of 8 gaps, one RK4 step per window.
    "ncde_log_ode": {
        "model": "ncde",
        "hidden": 32,
        "solver": "log_ode",
        "solver_options": {"window": 8, "solver": "rk4"},
    },
    "s4d": {"model": "s4d"},
    # The recipe of the docs page "Long irregular series": mean over real positions, 4 blocks, dropout.
    "s4d_recipe": {"model": "s4d", **RECIPE},
    "hope_recipe": {"model": "hope", **RECIPE},
    "lssl_recipe": {"model": "lssl", **RECIPE},
    "lssl": {"model": "lssl"},
    "hope": {"model": "hope"},
    "deep_ssm": {"model": "deep_ssm"},
}
# --small: this many series per split, cut to this many observations, and a narrow model.
SMALL_SERIES, SMALL_LENGTH, SMALL_HIDDEN = 12, 40, 8


@dataclass
class Row:
    """One method on one dataset at one missing rate; `minutes` is the training (or fitting) time."""

    dataset: str
    missing: float
    method: str
    accuracy: float | None
    minutes: float
    evals: float | None = None
    parameters: int | None = None
    note: str = ""


def splits(dataset: str, missing: float, seed: int, small: bool) -> tuple[IrregularBatch, IrregularBatch]:
    """The train and test batches the models see (with `small`, `SMALL_SERIES` series spread over
    each split, cut to their first `SMALL_LENGTH` observations)."""
    pair = tuple(load(dataset, split, missing_rate=missing, seed=seed) for split in ("train", "test"))
    return tuple(_shrink(batch) for batch in pair) if small else pair


def _shrink(batch: IrregularBatch) -> IrregularBatch:
    picked = batch.select(list(range(0, batch.batch_size, max(1, batch.batch_size // SMALL_SERIES))))
    return IrregularBatch(
        times=picked.times[:, :SMALL_LENGTH],
        values=picked.values[:, :SMALL_LENGTH],
        mask=picked.mask[:, :SMALL_LENGTH],
        lengths=picked.lengths.clamp(max=SMALL_LENGTH),
        targets=picked.targets,
    )


def baseline_rows(dataset: str, missing: float, seed: int, small: bool) -> list[Row]:
    """1-NN Euclidean, 1-NN DTW and MiniRocket on series resampled to the longest train length."""
    train, test = splits(dataset, missing, seed, small)
    length = int(load(dataset, "train").lengths.max()) if not small else SMALL_LENGTH
    x_train, x_test = baselines.resample(train, length), baselines.resample(test, length)
    runs = {
        "1-NN Euclidean": lambda: baselines.nearest_neighbour_accuracy(
            baselines.euclidean_pairwise, x_train, train.targets, x_test, test.targets
        ),
        "1-NN DTW (full window)": lambda: baselines.nearest_neighbour_accuracy(
            baselines.dtw_distances, x_train, train.targets, x_test, test.targets
        ),
        "MiniRocket (aeon)": lambda: baselines.minirocket_accuracy(x_train, train.targets, x_test, test.targets, seed),
    }
    rows = []
    for method, score in runs.items():
        if method.startswith("MiniRocket") and not baselines.aeon_runs():
            rows.append(Row(dataset, missing, method, None, 0.0, note="skipped: aeon's dependencies not installed"))
            continue
        start = time.perf_counter()
        accuracy = score()
        rows.append(Row(dataset, missing, method, accuracy, (time.perf_counter() - start) / 60, note=f"L = {length}"))
    return rows


def model_rows(
    dataset: str, missing: float, names: list[str], epochs: int, seed: int, small: bool, runs: Path
) -> list[Row]:
    """Each model configuration of `names` trained by `fit` and scored on the test split."""
    rows = []
    for name in names:
        keys = MODELS[name]
        unknown = [
            f"{kind} {keys[kind]!r}"
            for kind in ("model", "solver")
            if kind in keys and keys[kind] not in registry.names(kind)
        ]
        if unknown:
            rows.append(
                Row(dataset, missing, name, None, 0.0, note=f"skipped: {', '.join(unknown)} not registered yet")
            )
            continue
        folder = runs / f"{dataset}-{int(missing * 100)}-{name}"
        common = {**keys, "epochs": epochs, "seed": seed}
        if small:  # own batches: already cut and dropped, so no `missing` again
            config = FitConfig.from_mapping({**common, "hidden": SMALL_HIDDEN, "batch_size": SMALL_SERIES})
            data = splits(dataset, missing, seed, small)
        else:
            config, data = FitConfig.from_mapping({**common, "dataset": dataset, "missing": missing}), None
        start = time.perf_counter()
        result = fit(config, folder, data=data)
        minutes = (time.perf_counter() - start) / 60
        rows.append(
            Row(dataset, missing, name, result["test_accuracy"], minutes, result["test_vf_evals"], result["parameters"])
        )
    return rows


def write(rows: list[Row], info: dict, settings: dict, folder: Path) -> tuple[Path, Path]:
    """`long-series-<machine>.json` (every row) and `.md` (a table per dataset) in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"long-series-{machine_name(torch.device('cpu'))}{'-small' if settings['small'] else ''}"
    payload = {"machine": info, "settings": settings, "rows": [dataclasses.asdict(row) for row in rows]}
    stem.with_suffix(".json").write_text(json.dumps(payload, indent=1) + "\n")
    lines = [
        f"Measured on {info['date']}: {info['cpu']}, {info['cores']} cores, {info['threads']} torch threads. "
        f"Settings: {json.dumps(settings)}. Accuracy on the published test split; minutes of training "
        "(baselines: distances and fit); evals: vector-field evaluations per test sample.",
    ]
    for dataset in dict.fromkeys(row.dataset for row in rows):
        lines += [
            "",
            f"### {dataset}",
            "",
            "| method | dropped | test accuracy | train min | evals | parameters | note |",
        ]
        lines.append("|---|---|---|---|---|---|---|")
        for row in (row for row in rows if row.dataset == dataset):
            accuracy = "" if row.accuracy is None else f"{row.accuracy:.3f}"
            evals = "" if row.evals is None else f"{row.evals:.4g}"
            cells = [row.method, f"{row.missing:.0%}", accuracy, f"{row.minutes:.2f}", evals, str(row.parameters or "")]
            lines.append("| " + " | ".join([*cells, row.note]) + " |")
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    return stem.with_suffix(".json"), stem.with_suffix(".md")


def main(argv: list[str] | None = None) -> tuple[Path, Path]:
    """The command line (see the module docstring); returns the JSON and Markdown paths."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    parser.add_argument("--models", nargs="*", choices=list(MODELS), default=list(MODELS), help="none: baselines only")
    parser.add_argument("--missing", nargs="+", type=float, default=[0.0, 0.5], help="dropped fractions")
    parser.add_argument("--epochs", type=int, default=30, help="training epochs per model (1 with --small)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the dropped observations and the training")
    parser.add_argument("--small", action="store_true", help="CI size: a few short series, one epoch")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"results folder (default: {RESULTS})")
    args = parser.parse_args(argv)
    epochs = 1 if args.small else args.epochs
    rows = []
    for dataset in args.datasets:
        for missing in args.missing:
            rows += baseline_rows(dataset, missing, args.seed, args.small)
            runs = args.output / "long-series-runs"
            rows += model_rows(dataset, missing, args.models, epochs, args.seed, args.small, runs)
            print(f"{dataset} at {missing:.0%} dropped: done", flush=True)
    settings = {"small": args.small, "epochs": epochs, "seed": args.seed, "models": args.models}
    return write(rows, machine_info(torch.device("cpu")), settings, args.output)


if __name__ == "__main__":
    print(*main(), sep="\n")

"""Sweeps over any config keys: a run folder per point named by it, one summary row per point
with the score's spread over the seeds beside its cost, a labelled figure, bad grids refused."""

from __future__ import annotations

import json
import re
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

from neuralct.errors import InvalidInputError
from neuralct.train.config import FitConfig
from neuralct.train.sweep import _grid_keys, _points, sweep

BASE = {
    "model": "ode_rnn",
    "dataset": "spirals",
    "epochs": 1,
    "batch_size": 16,
    "dataset_options": {"size": 32, "length": 8},
}


@pytest.fixture
def figures(monkeypatch) -> list[Figure]:
    """The figures saved during the test, in order."""
    saved: list[Figure] = []
    original = Figure.savefig

    def keep(self: Figure, *args, **kwargs) -> None:
        saved.append(self)
        original(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    return saved


def _runs(folder: Path, row: dict) -> list[Path]:
    return [folder / f"lr={row['lr']},hidden={row['hidden']},seed={seed}" for seed in (0, 1)]


def test_a_sweep_over_lr_and_hidden_summarises_each_point_over_its_seeds_beside_its_cost(
    tmp_path: Path, no_plots, figures
) -> None:
    said: list[str] = []
    rows = sweep(BASE, {"lr": [0.001, 0.03], "hidden": [4, 8], "seed": [0, 1]}, tmp_path, report=said.append)
    folders = {p.name for p in tmp_path.iterdir() if p.is_dir()}
    assert folders == {f"lr={lr},hidden={h},seed={s}" for lr in ("0.001", "0.03") for h in (4, 8) for s in (0, 1)}
    assert [line.split(":")[0] for line in said[::2]] == [f"point {i}/8" for i in range(1, 9)]
    assert [(row["lr"], row["hidden"], row["seeds"]) for row in rows] == [
        ("0.001", "4", 2),
        ("0.001", "8", 2),
        ("0.03", "4", 2),
        ("0.03", "8", 2),
    ]
    for row in rows:
        configs = [json.loads((run / "config.json").read_text()) for run in _runs(tmp_path, row)]
        assert [(c["lr"], c["hidden"], c["seed"]) for c in configs] == [
            (float(row["lr"]), int(row["hidden"]), seed) for seed in (0, 1)
        ]  # each folder trained its own point
        results = [json.loads((run / "result.json").read_text()) for run in _runs(tmp_path, row)]
        scores = [result["test_accuracy"] for result in results]
        assert row["mean"] == pytest.approx(np.mean(scores)) and row["std"] == pytest.approx(np.std(scores))
        epochs = [(run / "metrics.jsonl").read_text().splitlines() for run in _runs(tmp_path, row)]
        seconds = [sum(json.loads(line)["seconds"] for line in lines) for lines in epochs]
        assert row["seconds"] == pytest.approx(np.mean(seconds)) and row["seconds"] > 0
        assert row["vf_evals"] == pytest.approx(np.mean([r["test_vf_evals"] for r in results])) and row["vf_evals"] > 0
        assert row["failed"] == 0 and row["parameters"] == results[0]["parameters"]
    assert rows[1]["parameters"] > rows[0]["parameters"]  # 8 hidden units have more weights than 4
    table = (tmp_path / "summary.md").read_text().splitlines()
    assert len(table) == 2 + 4 and table[0].startswith("| lr | hidden | seeds | test metric (mean ± std) | train s")
    summary = figures[-1]
    labelled = [axis.get_ylabel() for axis in summary.axes]
    assert len(labelled) == 3 and all(labelled) and summary.axes[1].get_xlabel()
    ticks = [tick.get_text() for tick in summary.axes[1].get_xticklabels()]
    assert ticks == ["lr=0.001\nhidden=4", "lr=0.001\nhidden=8", "lr=0.03\nhidden=4", "lr=0.03\nhidden=8"]
    said.clear()
    again = sweep(BASE, {"lr": [0.001, 0.03], "hidden": [4, 8], "seed": [0, 1]}, tmp_path, report=said.append)
    assert again == rows and all("(finished: kept)" in line for line in said[::2])  # kept runs keep their cost
    with pytest.raises(InvalidInputError, match=r"holds a run with epochs=1 where the sweep asks epochs=2"):
        sweep({**BASE, "epochs": 2}, {"lr": [0.001, 0.03], "hidden": [4, 8], "seed": [0, 1]}, tmp_path)


def test_every_config_field_and_one_option_of_a_mapping_are_grid_keys() -> None:
    names = [f.name for f in fields(FitConfig)]
    grid = {name: [1] for name in names} | {"model_options.dropout": [0.1], "dataset_options.size": [32]}
    assert _grid_keys(grid) == [key for key in grid if key != "seed"]


def test_points_get_distinct_folder_names_from_a_safe_character_set() -> None:
    grid = {
        "model_options": [{"x": "a/b"}, {"x": "a_b"}, {}],
        "model_options.scale": [1, 1.0, "1"],
        "solver": [None, "rk4"],
    }
    points = _points(BASE, grid, list(grid))
    names = [point.name for point in points]
    assert len(set(names)) == len(names) == 18
    assert all(re.fullmatch(r"[A-Za-z0-9._+=,~-]+", name) and len(name) < 200 for name in names), names
    assert points[-1].name == "model_options=empty,model_options.scale=1~" + names[-1].split("~")[1]
    assert points[0].config.model_options == {"x": "a/b", "scale": 1}  # the option on top of the whole dict
    assert points[0].config.solver is None and points[1].config.solver == "rk4"
    readable = _points(BASE, {"lr": [0.001], "hidden": [32], "seed": [0]}, ["lr", "hidden"])
    assert [point.name for point in readable] == ["lr=0.001,hidden=32,seed=0"]


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ({"hiden": [4]}, "unknown grid key 'hiden'; did you mean 'hidden'?"),
        ({"optimizer": ["sgd"]}, "unknown grid key 'optimizer'"),
        ({"model_options.2x": [1]}, "unknown grid key 'model_options.2x'"),
        ({"lr": []}, "grid key 'lr' needs a non-empty list of values; got []"),
        ({"lr": 0.1}, "grid key 'lr' needs a non-empty list of values; got 0.1"),
        ({"lr": [0.1, 0.1]}, "grid key 'lr' lists 0.1 more than once"),
        ({"lr": [0.1, -1.0]}, "`lr` must be a positive finite number; got -1.0"),
    ],
)
def test_a_bad_grid_is_refused_by_name_before_any_run(tmp_path: Path, grid: dict, message: str) -> None:
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        sweep(BASE, grid, tmp_path / "out", report=lambda line: None)
    assert not (tmp_path / "out").exists()

"""A grid of runs (models x solvers x missing rates x seeds) and its summary.

`sweep(base, grid, out)` trains one run folder per point of the grid (see `neuralct.train.run`),
resuming points that were stopped and skipping finished ones, then writes `summary.csv`,
`summary.md` (mean and standard deviation over seeds of the test metric, wall time per run,
function evaluations per test sample, parameters) and `summary.png` (the metric per point with
its spread).

```text
{"base": {"dataset": "japanese_vowels", "epochs": 20},
 "grid": {"model": ["ltc", "tau_gru"], "solver": [null, "tsit5"], "missing": [0.3], "seed": [0, 1]}}
```
"""

from __future__ import annotations

import csv
import itertools
import json
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .._choices import did_you_mean  # noqa: E402
from ..errors import InvalidInputError  # noqa: E402
from .config import FitConfig  # noqa: E402
from .mappings import read_mapping  # noqa: E402
from .run import fit  # noqa: E402

GRID_KEYS = ("model", "solver", "missing", "seed")


def sweep(
    base: Mapping[str, Any],
    grid: Mapping[str, Sequence[Any]],
    out: Path | str,
    *,
    report: Callable[[str], None] = print,
) -> list[dict]:
    """Run every point of `grid` (keys among `GRID_KEYS`) on top of the `base` config keys.

    Returns one summary row per (model, solver, missing) point, aggregated over the seeds.

    Raises:
        InvalidInputError: a grid key outside `GRID_KEYS`, an empty list, or a bad config at any
            point (every point is validated before the first run starts).
    """
    out = Path(out)
    configs = _points(base, grid)
    runs = []
    for config in configs:
        folder = out / _name(config)
        start = time.perf_counter()
        resume = (folder / "last.pt").exists()
        result = _result(folder) if (folder / "result.json").exists() else None
        if result is None:
            result = fit(None if resume else config, folder, resume=resume)
        runs.append({"config": config, "result": result, "seconds": time.perf_counter() - start})
        report(f"{_name(config)}: {json.dumps(result)}")
    rows = _summarise(runs)
    _write(rows, out)
    return rows


def read_sweep(path: Path | str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The `base` config keys and the `grid` of a sweep file (YAML or JSON).

    Raises:
        InvalidInputError: an unreadable file, or a top-level key other than `base` and `grid`
            (with a suggestion: a misspelled `grid` would otherwise run the base config alone).
    """
    spec = read_mapping(path)
    for key in spec:
        if key not in ("base", "grid"):
            raise InvalidInputError(
                f"unknown key {key!r} in sweep file {str(path)!r}{did_you_mean(str(key), ['base', 'grid'])} "
                "A sweep file holds `base` (config keys) and `grid` (lists of values)"
            )
    return dict(spec.get("base", {})), dict(spec.get("grid", {}))


def _points(base: Mapping[str, Any], grid: Mapping[str, Sequence[Any]]) -> list[FitConfig]:
    for key, values in grid.items():
        if key not in GRID_KEYS:
            raise InvalidInputError(f"grid key {key!r} is not one of {', '.join(GRID_KEYS)}")
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
            raise InvalidInputError(f"grid key {key!r} needs a non-empty list of values; got {values!r}")
    keys = list(grid)
    return [FitConfig.from_mapping({**base, **dict(zip(keys, combo))}) for combo in itertools.product(*grid.values())]


def _name(config: FitConfig) -> str:
    solver = config.solver or "natural"
    return f"{config.model}-{solver}-missing{config.missing:g}-seed{config.seed}"


def _result(folder: Path) -> dict:
    return json.loads((folder / "result.json").read_text())


def _summarise(runs: list[dict]) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for run in runs:
        config = run["config"]
        groups.setdefault((config.model, config.solver or "natural", config.missing), []).append(run)
    rows = []
    for (model, solver, missing), members in groups.items():
        metric = "test_accuracy" if members[0]["result"]["test_accuracy"] is not None else "test_mae"
        values = [m["result"][metric] for m in members]
        rows.append(
            {
                "model": model,
                "solver": solver,
                "missing": missing,
                "seeds": len(members),
                "metric": metric,
                "mean": statistics.fmean(values),
                "std": statistics.pstdev(values),
                "seconds": statistics.fmean(m["seconds"] for m in members),
                "vf_evals": statistics.fmean(m["result"]["test_vf_evals"] for m in members),
                "parameters": members[0]["result"]["parameters"],
            }
        )
    return rows


def _write(rows: list[dict], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with (out / "summary.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = ["| model | solver | missing | seeds | test metric (mean ± std) | s / run | evals / sample | parameters |"]
    lines.append("|---|---|---|---|---|---|---|---|")
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['solver']} | {r['missing']:g} | {r['seeds']} | {r['metric']} {r['mean']:.4f} ± "
            f"{r['std']:.4f} | {r['seconds']:.1f} | {r['vf_evals']:.0f} | {r['parameters']} |"
        )
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    figure, axis = plt.subplots(figsize=(max(5, 1.2 * len(rows)), 3.5))
    labels = [f"{r['model']}\n{r['solver']}\n{r['missing']:g}" for r in rows]
    axis.bar(range(len(rows)), [r["mean"] for r in rows], yerr=[r["std"] for r in rows], capsize=4)
    axis.set(xticks=range(len(rows)), ylabel=rows[0]["metric"].replace("_", " "))
    axis.set_xticklabels(labels, fontsize=8)
    figure.tight_layout()
    figure.savefig(out / "summary.png", dpi=120)
    plt.close(figure)

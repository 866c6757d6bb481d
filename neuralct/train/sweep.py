"""A grid of runs over any config keys, seeds as replicates, and its summary with the cost.

`sweep(base, grid, out)` trains one run folder per point of the grid on top of the `base` config
keys (see `neuralct.train.run`), resuming points that were stopped and keeping finished ones. A
grid key is any `FitConfig` field (`lr`, `hidden`, `rtol`, `gradient`, `model_options` as whole
dicts, ...) or one option of a mapping field (`model_options.dropout`); `seed` is the replicate
axis that the summary averages over. Each run folder is named by its point, e.g.
`lr=0.001,hidden=32,seed=0` (letters, digits and `._+-`; a value outside them, or two values that
would read alike, gets a hash of its own, so two points never share a folder).

The summary has one row per point (every grid key but `seed`): mean and standard deviation over
the seeds of the test accuracy (or of the MAE for regression), training seconds per run,
evaluations per test sample, failed test samples per run and parameters, in `summary.csv` and
`summary.md`; `summary.png` draws the score with its spread and, below it, the cost.

```text
{"base": {"dataset": "japanese_vowels", "epochs": 20},
 "grid": {"lr": [0.001, 0.003], "hidden": [32, 64], "model_options.dropout": [0.0, 0.1], "seed": [0, 1]}}
```
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import re
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any

from .._checks import did_you_mean
from ..errors import InvalidInputError
from .config import FitConfig
from .mappings import read_mapping
from .progress import Progress
from .run import Monitor, fit

SEED = "seed"
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]")


@dataclass(frozen=True)
class _Point:
    """One run of the grid: its config, its folder name and the texts of its non-seed values."""

    config: FitConfig
    name: str
    values: tuple[str, ...]


def sweep(
    base: Mapping[str, Any],
    grid: Mapping[str, Sequence[Any]],
    out: Path | str,
    *,
    report: Callable[[str], None] = print,
    progress: Callable[[FitConfig], Progress] | None = None,
    monitor: Monitor | None = None,
) -> list[dict]:
    """Run every point of `grid` (lists of values of config keys) on top of the `base` config keys.

    Args:
        report: told "point i/N: <folder>" before each run and its score and cost after it.
        progress: makes the `Progress` of each run from its config (default: none shown).
        monitor: handed to `fit` for the runs with `monitor_jacobian`.

    Returns:
        One summary row per point (its non-seed grid values), aggregated over the seeds.

    Raises:
        InvalidInputError: an unknown grid key (with a suggestion), an empty list, a value listed
            twice, a bad config at any point, or a folder of `out` that holds a run of another
            config (every point is checked before the first run starts).
    """
    out, keys = Path(out), _grid_keys(grid)
    points = _points(base, grid, keys)
    for point in points:
        _check_folder(out / point.name, point.config)
    runs = []
    for index, point in enumerate(points, start=1):
        folder = out / point.name
        finished, resume = (folder / "result.json").exists(), (folder / "last.pt").exists()
        status = " (finished: kept)" if finished else " (resuming)" if resume else ""
        report(f"point {index}/{len(points)}: {point.name}{status}")
        if not finished:
            made = None if progress is None else progress(point.config)
            fit(None if resume else point.config, folder, resume=resume, progress=made, monitor=monitor)
        runs.append(_run(point, folder))
        report(f"point {index}/{len(points)}: {_score(runs[-1])}")
    rows = _summarise(runs, keys)
    _write(rows, keys, out)
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


def _grid_keys(grid: Mapping[str, Sequence[Any]]) -> list[str]:
    """The non-seed grid keys in the file's order, each checked with its list of values."""
    names = [f.name for f in fields(FitConfig)]
    mappings = [f.name for f in fields(FitConfig) if f.default_factory is not MISSING and f.default_factory() == {}]
    for key, values in grid.items():
        prefix, dot, option = str(key).partition(".")
        if key not in names and not (dot and prefix in mappings and option.isidentifier()):
            dotted = ", ".join(f"{m}.NAME" for m in mappings)
            raise InvalidInputError(
                f"unknown grid key {key!r}{did_you_mean(str(key), names)} A grid key is a config key "
                f"({', '.join(names)}) or one option of {dotted}"
            )
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
            raise InvalidInputError(f"grid key {key!r} needs a non-empty list of values; got {values!r}")
        canonical = [_canonical(value) for value in values]
        twice = next((v for v, c in zip(values, canonical) if canonical.count(c) > 1), MISSING)
        if twice is not MISSING:
            raise InvalidInputError(f"grid key {key!r} lists {twice!r} more than once: two points would be one run")
    return [key for key in grid if key != SEED]


def _points(base: Mapping[str, Any], grid: Mapping[str, Sequence[Any]], keys: list[str]) -> list[_Point]:
    """Every point of the grid (seeds innermost), validated as a `FitConfig`."""
    order = [*keys, SEED] if SEED in grid else keys
    texts = {key: dict(zip(map(_canonical, grid[key]), _texts(grid[key]))) for key in order}
    points = []
    for combo in itertools.product(*(grid[key] for key in order)):
        values = dict(zip(order, combo))
        config = FitConfig.from_mapping(_merged(base, values))
        shown = tuple(texts[key][_canonical(values[key])] for key in keys)
        name = ",".join([*(f"{key}={text}" for key, text in zip(keys, shown)), f"{SEED}={config.seed}"])
        points.append(_Point(config, name, shown))
    return points


def _merged(base: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with the point's `values`; a dotted key sets one option of its mapping, on top of a
    whole mapping that the grid or the base gives."""
    merged = {**base, **{key: value for key, value in values.items() if "." not in key}}
    for key, value in values.items():
        prefix, dot, option = key.partition(".")
        if dot:
            merged[prefix] = {**merged.get(prefix, {}), option: value}
    return merged


def _texts(values: Sequence[Any]) -> list[str]:
    """The folder-name text of each value: readable, and a hash added where the text had to be
    cut or cleaned, or where two values read alike (`1` and `"1"`)."""
    readable = [_readable(value) for value in values]
    texts = []
    for value, text in zip(values, readable):
        clean = _UNSAFE.sub("_", text)[:40]
        if clean != text or readable.count(text) > 1:
            clean += "~" + hashlib.sha1(_canonical(value).encode()).hexdigest()[:8]
        texts.append(clean)
    return texts


def _readable(value: Any) -> str:
    """`none`, `true`, `0.001`, `rk4`, `dropout-0.1+layers-2` (a mapping), `8+16` (a list)."""
    if value is None or isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return repr(value)  # the shortest text that reads back as the same float
    if isinstance(value, Mapping):
        return "+".join(f"{k}-{_readable(v)}" for k, v in sorted(value.items(), key=str)) or "empty"
    if isinstance(value, (list, tuple)):
        return "+".join(map(_readable, value)) or "empty"
    return str(value)


def _canonical(value: Any) -> str:
    """A text equal for equal values of equal types (`1`, `1.0` and `true` differ)."""
    return json.dumps(value, sort_keys=True, default=repr)


def _check_folder(folder: Path, config: FitConfig) -> None:
    """Refuse a point's folder that holds a run of another config (a sweep run again after its
    base changed would otherwise report the old runs)."""
    saved_path = folder / "config.json"
    if not saved_path.is_file():
        return
    saved, wanted = json.loads(saved_path.read_text()), json.loads(json.dumps(config.as_dict()))
    changed = [key for key in saved if saved[key] != wanted.get(key)]
    if changed:
        key = changed[0]
        raise InvalidInputError(
            f"{folder} holds a run with {key}={saved[key]!r} where the sweep asks {key}={wanted.get(key)!r}; "
            "give the sweep another --out or remove that folder"
        )


def _run(point: _Point, folder: Path) -> dict:
    """A finished run's point, test result and training seconds (the sum of its epochs', so a
    kept or resumed run counts its whole training)."""
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines() if line.strip()]
    result = json.loads((folder / "result.json").read_text())
    return {"point": point, "result": result, "seconds": sum(row["seconds"] for row in rows)}


def _metric(result: Mapping[str, Any]) -> str:
    return "test_accuracy" if result.get("test_accuracy") is not None else "test_mae"


def _score(run: dict) -> str:
    metric = _metric(run["result"])
    evals = run["result"]["test_vf_evals"]
    return f"{metric} {run['result'][metric]:.4g}, {run['seconds']:.3g} s, {evals:.0f} evals/sample"


def _summarise(runs: list[dict], keys: list[str]) -> list[dict]:
    """One row per point: its values, then the score and cost over its seeds."""
    groups: dict[tuple[str, ...], list[dict]] = {}
    for run in runs:
        groups.setdefault(run["point"].values, []).append(run)
    rows = []
    for values, members in groups.items():
        results = [m["result"] for m in members]
        metric = _metric(results[0])
        scores = [r[metric] for r in results]
        rows.append(
            {
                **dict(zip(keys, values)),
                "seeds": len(members),
                "metric": metric,
                "mean": statistics.fmean(scores),
                "std": statistics.pstdev(scores),
                "seconds": statistics.fmean(m["seconds"] for m in members),
                "vf_evals": statistics.fmean(r["test_vf_evals"] for r in results),
                "failed": statistics.fmean(r.get("test_failed", 0) for r in results),
                "parameters": results[0]["parameters"],
            }
        )
    return rows


def _write(rows: list[dict], keys: list[str], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with (out / "summary.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    header = [*keys, "seeds", "test metric (mean ± std)", "train s / run", "evals / test sample", "failed / run"]
    lines = ["| " + " | ".join([*header, "parameters"]) + " |", "|" + "---|" * (len(header) + 1)]
    for r in rows:
        cells = [*(str(r[key]).replace("|", "\\|") for key in keys), str(r["seeds"])]
        cells += [f"{r['metric']} {r['mean']:.4g} ± {r['std']:.2g}", f"{r['seconds']:.3g}", f"{r['vf_evals']:.0f}"]
        lines.append("| " + " | ".join([*cells, f"{r['failed']:g}", str(r["parameters"])]) + " |")
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    from .sweep_plot import plot_summary  # matplotlib: loaded only when there is a summary to draw

    plot_summary(rows, keys, out / "summary.png")

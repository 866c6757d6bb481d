"""The report of a benchmark run: the machine, the results files and their Markdown.

`write_results` turns a list of `BenchmarkResult`s into `<stem>.json` and `<stem>.md`, where the
stem names the machine and the mode (`cpu-2core`, `cpu-2core-quick`), so that a quick run never
overwrites the full results. The Markdown opens with one "Targets" table (every target with
measured / required / met) and the run time of each benchmark; `main_for` runs one module on its own.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.metadata
import json
import math
import os
import platform
import re
from collections.abc import Callable
from pathlib import Path

import torch

from benchmarks.harness import BenchmarkResult, Settings

PEERS = ("torchdiffeq", "torchode", "torchsde", "torchcde", "torchdde", "ncps")


def machine_info(device: torch.device) -> dict[str, object]:
    """The machine, the library versions and the thread count, for the report."""
    info: dict[str, object] = {
        "date": datetime.date.today().isoformat(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    info["versions"] = {name: _version(name) for name in ("neuralct", "torch", *PEERS)}
    return info


def machine_name(device: torch.device) -> str:
    """`cpu-<cores>core`, or the GPU's name in lower case with dashes (`nvidia-h100-80gb-hbm3`)."""
    if device.type == "cuda":
        return re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name(device).lower()).strip("-")
    return f"cpu-{os.cpu_count()}core"


def results_stem(settings: Settings, suffix: str = "") -> str:
    """File stem of a run's results: the machine, `suffix` (which suite), and `-quick` in quick mode."""
    return machine_name(settings.device) + suffix + ("-quick" if settings.quick else "")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def write_results(
    results: list[BenchmarkResult], info: dict, settings: Settings, folder: Path, stem: str | None = None
) -> tuple[Path, Path]:
    """Write `<stem>.json` and `<stem>.md` into `folder` (stem: `results_stem(settings)` unless
    given); returns both paths."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = results_stem(settings) if stem is None else stem
    payload = {
        "machine": info,
        "settings": {"quick": settings.quick, "repeats": settings.repeats, "budget_s": settings.budget_s},
        "targets": [_target_json(result.title, target) for result in results for target in result.targets],
        "benchmarks": [dataclasses.asdict(result) | {"targets": _targets_json(result)} for result in results],
    }
    json_path, md_path = folder / f"{stem}.json", folder / f"{stem}.md"
    json_path.write_text(json.dumps(payload, indent=1) + "\n")
    md_path.write_text(markdown_report(results, info, settings))
    return json_path, md_path


def _target_json(title: str, target: object) -> dict:
    return {"benchmark": title} | dataclasses.asdict(target) | {"met": target.met}


def _targets_json(result: BenchmarkResult) -> list[dict]:
    return [dataclasses.asdict(target) | {"met": target.met} for target in result.targets]


def markdown_report(results: list[BenchmarkResult], info: dict, settings: Settings) -> str:
    """The whole report: machine and versions, the "Targets" table, the run times, then each benchmark.

    In the tables, "time ratio" is a row's wall time over that of its case's first row
    (neuralct's, where a peer is compared): above 1 means neuralct is faster."""
    versions = ", ".join(f"{name} {version}" for name, version in info["versions"].items())
    mode = "quick (smaller sizes and fewer tolerances: indicative)" if settings.quick else "full"
    lines = [
        f"Measured on {info['date']}: {info.get('gpu', info['cpu'])}, {info['cores']} cores, "
        f"{info['threads']} torch threads, device `{info['device']}`, Python {info['python']}; {versions}. "
        f"Mode {mode}: each measurement is the median of as many timed calls as fit in {settings.budget_s:g} s "
        f"(at least 3, at most {settings.repeats}) after a warm-up call. In each table, time ratio = wall time / "
        "wall time of the case's first row (neuralct): above 1, neuralct is faster.",
        *targets_table(results),
        *run_time_table(results),
    ]
    for result in results:
        lines += ["", f"### {result.title}", "", result.setup, "", *_rows_table(result)]
        if result.notes:
            lines += ["", *(f"- {note}" for note in result.notes)]
    return "\n".join(lines) + "\n"


def targets_table(results: list[BenchmarkResult]) -> list[str]:
    """Markdown lines of the "Targets" section: every target of every result, then a count."""
    lines = ["", "### Targets", "", "| benchmark | target | measured | required | met |", "|---|---|---|---|---|"]
    targets = [(result.title, target) for result in results for target in result.targets]
    for title, target in targets:
        relation = "<=" if target.at_most else ">="
        measured = "n/a" if math.isnan(target.measured) else f"{target.measured:.3g}"
        lines.append(
            f"| {title} | {target.description} | {measured} | {relation} {target.required:g} "
            f"| {'yes' if target.met else '**no**'} |"
        )
    met = sum(target.met for _, target in targets)
    return [*lines, "", f"{met} of {len(targets)} targets met."]


def run_time_table(results: list[BenchmarkResult]) -> list[str]:
    """Markdown lines of the "Run time" section: seconds per benchmark against its budget, and
    the total; nothing when the results carry no times (a module run on its own)."""
    timed = [result for result in results if result.seconds is not None]
    if not timed:
        return []
    lines = ["", "### Run time", "", "| benchmark | seconds | budget |", "|---|---|---|"]
    for result in timed:
        budget = "" if result.budget_s is None else f"{result.budget_s:g}"
        lines.append(f"| {result.title} | {result.seconds:.0f} | {budget} |")
    budgets = [result.budget_s for result in timed if result.budget_s is not None]
    total_budget = f"{sum(budgets):g}" if len(budgets) == len(timed) else ""
    return [*lines, f"| total | {sum(result.seconds for result in timed):.0f} | {total_budget} |"]


def _rows_table(result: BenchmarkResult) -> list[str]:
    columns = [("evals", "evals"), ("error", "error"), ("memory_mib", "saved MiB"), ("note", "note")]
    shown = [(key, title) for key, title in columns if any(getattr(row, key) not in (None, "") for row in result.rows)]
    header = ["case", "library", "wall ms", "time ratio", *(title for _, title in shown)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    first_of_case: dict[str, float] = {}
    for row in result.rows:
        reference = first_of_case.setdefault(row.case, row.wall_s)
        cells = [row.case, row.library, f"{row.wall_s * 1e3:.3g}", f"{row.wall_s / reference:.2f}x"]
        cells += [_cell(getattr(row, key)) for key, _ in shown]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def main_for(run: Callable[[Settings], BenchmarkResult], description: str) -> BenchmarkResult:
    """Command line for one benchmark module: `--quick`, `--device`, `--threads`; prints its report."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="smaller sizes and shorter budgets")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = Settings.create(args.quick, args.device)
    result = run(settings)
    print(markdown_report([result], machine_info(settings.device), settings))
    return result

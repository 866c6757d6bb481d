"""What every benchmark shares: settings, timing, result records, targets and the report.

A benchmark module exposes `run(settings) -> BenchmarkResult`. It times neuralct and the
peer on the same problem in the same process and records one `Measurement` per (case,
library); its `Target`s compare the two as ratios. `write_results` turns a list of results
into `<machine>.json` and `<machine>.md`; `main_for` runs one module on its own.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import datetime
import importlib.metadata
import json
import math
import os
import platform
import pstats
import re
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

PEERS = ("torchdiffeq", "torchode", "torchsde", "torchcde", "torchdde", "ncps")


@dataclass(frozen=True)
class Settings:
    """How hard to measure.

    Attributes:
        quick: smaller problem sets and fewer repeats (the whole suite in minutes).
        repeats: timed calls per measurement (after one warm-up call).
        budget_s: a measurement stops repeating once its timed calls took this long.
        device: where tensors live.
    """

    quick: bool = False
    repeats: int = 20
    budget_s: float = 10.0
    device: torch.device = torch.device("cpu")

    @classmethod
    def create(cls, quick: bool, device: str = "cpu") -> Settings:
        """Quick: 5 repeats within 2 s per measurement; full: 20 within 10 s."""
        repeats, budget = (5, 2.0) if quick else (20, 10.0)
        return cls(quick=quick, repeats=repeats, budget_s=budget, device=torch.device(device))


@dataclass
class Measurement:
    """One library on one case. `wall_s` is the median over the repeats; `evals` counts
    vector-field calls on the whole batch (or per-sample totals where the case says so);
    `error` is the error against a reference solution where the case has one."""

    case: str
    library: str
    wall_s: float
    evals: int | None = None
    error: float | None = None
    memory_mib: float | None = None
    note: str = ""


@dataclass
class Target:
    """A claim checked on the measurements: `measured` must be at least (or, with
    `at_most`, at most) `required`."""

    description: str
    measured: float
    required: float
    at_most: bool = False

    @property
    def met(self) -> bool:
        """Whether the measured value satisfies the requirement."""
        return self.measured <= self.required if self.at_most else self.measured >= self.required


@dataclass
class BenchmarkResult:
    """Everything one benchmark measured: rows of `Measurement`s, the `Target`s checked on
    them, and free-form notes (fitted slopes, what a column means)."""

    name: str
    title: str
    setup: str
    rows: list[Measurement] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def wall(self, case: str, library: str) -> float:
        """The median wall time of `library` on `case`."""
        return self.row(case, library).wall_s

    def row(self, case: str, library: str) -> Measurement:
        """The measurement of `library` on `case`."""
        for row in self.rows:
            if row.case == case and row.library == library:
                return row
        raise KeyError(f"no measurement of {library!r} on {case!r} in benchmark {self.name!r}")

    def speedup(self, case: str, peer: str, required: float, library: str = "neuralct") -> Target:
        """Add and return the target `peer`'s wall time / `library`'s >= `required` on `case`."""
        measured = self.wall(case, peer) / self.wall(case, library)
        target = Target(f"{case}: {library} vs {peer}, speedup", measured, required)
        self.targets.append(target)
        return target


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so that a timer stops after the work it times."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(fn: Callable[[], object], settings: Settings, repeats: int | None = None) -> float:
    """Median wall seconds of `fn()` over up to `repeats` timed calls after one warm-up
    call; stops early (after at least 3 calls) once the calls took `settings.budget_s`."""
    return interleaved_medians({"fn": fn}, settings, repeats)["fn"]


def interleaved_medians(
    runs: dict[str, Callable[[], object]], settings: Settings, repeats: int | None = None
) -> dict[str, float]:
    """Median wall seconds of each of `runs`, timed in turns: every round calls each run once,
    so that a shared host's slow spells fall on all of them alike (medians taken one after
    the other, seconds apart, can differ by tens of percent there). One warm-up call each,
    then up to `repeats` rounds (`settings.repeats` by default), stopping (after at least 3)
    once the timed calls took `settings.budget_s` per run."""
    repeats = settings.repeats if repeats is None else repeats
    for fn in runs.values():
        fn()
    synchronize(settings.device)
    times: dict[str, list[float]] = {name: [] for name in runs}
    spent, rounds = 0.0, 0
    while rounds < repeats and (rounds < 3 or spent < settings.budget_s * len(runs)):
        for name, fn in runs.items():
            start = time.perf_counter()
            fn()
            synchronize(settings.device)
            times[name].append(time.perf_counter() - start)
            spent += times[name][-1]
        rounds += 1
    return {name: statistics.median(values) for name, values in times.items()}


def saved_mib(fn: Callable[[], object]) -> float:
    """MiB of the distinct storages autograd saves for backward while `fn()` builds its
    graph: the activation memory a training step holds at its peak (parameters and
    transient buffers excluded). Works on CPU, where torch reports no peak memory."""
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        fn()
    return sum(storages.values()) / 2**20


# A function, or a (file-name suffix, function name) pair for code not importable by name.
Matcher = Callable | tuple[str, str]


def profile_shares(fn: Callable[[], object], parts: dict[str, tuple[Matcher, ...]]) -> dict[str, float]:
    """Shares of one cProfile'd call of `fn` spent (cumulatively) in each named group of
    functions of `parts`, and in the rest (`"rest"`). Groups should not call each other."""
    profiler = cProfile.Profile()
    profiler.runcall(fn)
    entries = pstats.Stats(profiler).stats
    total = max(entry[3] for entry in entries.values())

    def cumulative(matchers: tuple[Matcher, ...]) -> float:
        return sum(entry[3] for key, entry in entries.items() if any(_matches(key, m) for m in matchers))

    shares = {name: cumulative(matchers) / total for name, matchers in parts.items()}
    shares["rest"] = 1.0 - sum(shares.values())
    return shares


def _matches(key: tuple[str, int, str], matcher: Matcher) -> bool:
    """Whether a pstats key `(file, line, name)` is the function `matcher` names."""
    if isinstance(matcher, tuple):
        return key[0].endswith(matcher[0]) and key[2] == matcher[1]
    code = matcher.__code__
    return key == (code.co_filename, code.co_firstlineno, code.co_name)


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The (error, wall) points that no cheaper point beats on error, by increasing wall."""
    front: list[tuple[float, float]] = []
    for error, wall in sorted(points, key=lambda point: point[1]):
        if not front or error < front[-1][0]:
            front.append((error, wall))
    return front


def wall_at_error(points: list[tuple[float, float]], error: float) -> float | None:
    """The wall time a work-precision curve of (error, wall) `points` needs for `error`: log-log
    interpolation between the two points of its Pareto front that bracket it; `None` outside
    the front's range (no extrapolation)."""
    front = pareto_front(points)
    for (e0, w0), (e1, w1) in zip(front, front[1:]):
        if e1 <= error <= e0:
            return w0 * (w1 / w0) ** (math.log(error / e0) / math.log(e1 / e0))
    return None


def loglog_slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of log y against log x."""
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = statistics.fmean(lx), statistics.fmean(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


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
    """File stem for this machine's results: `cpu-<cores>core` or the GPU's name."""
    if device.type == "cuda":
        return re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name(device).lower()).strip("-")
    return f"cpu-{os.cpu_count()}core"


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


def write_results(results: list[BenchmarkResult], info: dict, settings: Settings, folder: Path) -> tuple[Path, Path]:
    """Write `<machine>.json` and `<machine>.md` into `folder`; returns both paths."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = machine_name(settings.device)
    payload = {
        "machine": info,
        "settings": {"quick": settings.quick, "repeats": settings.repeats, "budget_s": settings.budget_s},
        "benchmarks": [dataclasses.asdict(result) | {"targets": _targets_json(result)} for result in results],
    }
    json_path, md_path = folder / f"{stem}.json", folder / f"{stem}.md"
    json_path.write_text(json.dumps(payload, indent=1) + "\n")
    md_path.write_text(markdown_report(results, info, settings))
    return json_path, md_path


def _targets_json(result: BenchmarkResult) -> list[dict]:
    return [dataclasses.asdict(target) | {"met": target.met} for target in result.targets]


def markdown_report(results: list[BenchmarkResult], info: dict, settings: Settings) -> str:
    """The whole report: machine and versions, a summary of the targets, then each benchmark.

    In the tables, "time ratio" is a row's wall time over that of its case's first row
    (neuralct's, where a peer is compared): above 1 means neuralct is faster."""
    versions = ", ".join(f"{name} {version}" for name, version in info["versions"].items())
    mode = "quick" if settings.quick else "full"
    lines = [
        f"Measured on {info['date']}: {info.get('gpu', info['cpu'])}, {info['cores']} cores, "
        f"{info['threads']} torch threads, device `{info['device']}`, Python {info['python']}; {versions}. "
        f"Mode `{mode}`: median of up to {settings.repeats} timed calls after a warm-up, "
        f"at most {settings.budget_s:g} s per measurement. In each table, time ratio = wall time / wall time of "
        "the case's first row (neuralct): above 1, neuralct is faster.",
        "",
        "| benchmark | target | measured | required | met |",
        "|---|---|---|---|---|",
    ]
    for result in results:
        for target in result.targets:
            relation = "<=" if target.at_most else ">="
            lines.append(
                f"| {result.title} | {target.description} | {target.measured:.3g} | {relation} {target.required:g} "
                f"| {'yes' if target.met else '**no**'} |"
            )
    for result in results:
        lines += ["", f"### {result.title}", "", result.setup, "", *_rows_table(result)]
        if result.notes:
            lines += ["", *(f"- {note}" for note in result.notes)]
    return "\n".join(lines) + "\n"


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
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = Settings.create(args.quick, args.device)
    result = run(settings)
    print(markdown_report([result], machine_info(settings.device), settings))
    return result

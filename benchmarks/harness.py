"""What every benchmark shares: settings, timing, result records, targets and fitted curves.

A benchmark module exposes `run(settings) -> BenchmarkResult`. It times neuralct and the
peer on the same problem in the same process and records one `Measurement` per (case,
library); its `Target`s compare the two as ratios. `benchmarks.report` writes the results
files; `benchmarks.precision` runs work-precision sweeps.
"""

from __future__ import annotations

import cProfile
import math
import pstats
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class Settings:
    """How hard to measure.

    Attributes:
        quick: smaller problem sets and shorter budgets (the whole suite in minutes).
        repeats: the most timed calls per measurement (after one warm-up call).
        budget_s: a measurement stops repeating once its timed calls took this long (at least
            `MIN_REPEATS` calls are always timed): the median of as many repeats as fit.
        device: where tensors live.
    """

    quick: bool = False
    repeats: int = 30
    budget_s: float = 3.0
    device: torch.device = torch.device("cpu")

    @classmethod
    def create(cls, quick: bool, device: str = "cpu") -> Settings:
        """Quick: up to 10 repeats within 0.4 s per measurement; full: up to 30 within 3 s."""
        repeats, budget = (10, 0.4) if quick else (30, 3.0)
        return cls(quick=quick, repeats=repeats, budget_s=budget, device=torch.device(device))


# Timed calls every measurement takes, whatever its budget: the median of fewer is one noisy call.
MIN_REPEATS = 3


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
    them, free-form notes (fitted slopes, what a column means), and, when the suite ran it,
    the seconds the benchmark took and its budget."""

    name: str
    title: str
    setup: str
    rows: list[Measurement] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float | None = None
    budget_s: float | None = None

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
    call; stops early (after at least `MIN_REPEATS` calls) once the calls took `settings.budget_s`."""
    return interleaved_medians({"fn": fn}, settings, repeats)["fn"]


def interleaved_medians(
    runs: dict[str, Callable[[], object]], settings: Settings, repeats: int | None = None
) -> dict[str, float]:
    """Median wall seconds of each of `runs`, timed in turns: every round calls each run once,
    so that a shared host's slow spells fall on all of them alike (medians taken one after
    the other, seconds apart, can differ by tens of percent there). One warm-up call each,
    then up to `repeats` rounds (`settings.repeats` by default), stopping (after at least
    `MIN_REPEATS`, or `repeats` if fewer) once the timed calls took `settings.budget_s` per run.
    On CUDA each call is timed by CUDA events around it (`timed_call`)."""
    repeats = settings.repeats if repeats is None else repeats
    for fn in runs.values():
        fn()
    synchronize(settings.device)
    times: dict[str, list[float]] = {name: [] for name in runs}
    spent, rounds = 0.0, 0
    while rounds < repeats and (rounds < MIN_REPEATS or spent < settings.budget_s * len(runs)):
        for name, fn in runs.items():
            times[name].append(timed_call(fn, settings.device))
            spent += times[name][-1]
        rounds += 1
    return {name: statistics.median(values) for name, values in times.items()}


def timed_call(fn: Callable[[], object], device: torch.device) -> float:
    """Seconds one call of `fn()` takes: on CUDA between two CUDA events recorded around it
    on the current stream (the work it queued included), elsewhere by the wall clock."""
    if device.type != "cuda":
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start
    events = [torch.cuda.Event(enable_timing=True) for _ in range(2)]
    events[0].record()
    fn()
    events[1].record()
    events[1].synchronize()
    return events[0].elapsed_time(events[1]) / 1e3


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


def slowest_ratio_at_equal_error(ours: list[tuple[float, float]], peer: list[tuple[float, float]]) -> float:
    """The smallest `peer wall / our wall` over our (error, wall) points, the peer's wall at our
    error read off its curve (`wall_at_error`; our points outside its range are skipped); NaN
    when none is inside it."""
    ratios = [peer_wall / wall for error, wall in ours if (peer_wall := wall_at_error(peer, error)) is not None]
    return min(ratios) if ratios else math.nan


def loglog_slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of log y against log x."""
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = statistics.fmean(lx), statistics.fmean(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)

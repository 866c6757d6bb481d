"""The benchmark harness: targets, ratios, slopes and the report files (the benchmarks run in `make bench`)."""

from __future__ import annotations

import importlib
import json
import math

import pytest
import torch

from benchmarks import precision
from benchmarks.__main__ import BENCHMARKS
from benchmarks.harness import (
    BenchmarkResult,
    Measurement,
    Settings,
    Target,
    interleaved_medians,
    loglog_slope,
    slowest_ratio_at_equal_error,
)
from benchmarks.precision import equal_error_targets, sweep
from benchmarks.report import results_stem, write_results


def _result() -> BenchmarkResult:
    result = BenchmarkResult("demo", "Demo", "A made-up problem.")
    result.rows += [Measurement("case", "neuralct", 0.01, evals=10), Measurement("case", "peer", 0.03, evals=12)]
    return result


def test_speedup_is_the_peer_wall_over_ours_and_targets_know_at_least_from_at_most():
    result = _result()
    target = result.speedup("case", "peer", 2.0)
    assert target.measured == pytest.approx(3.0) and target.met
    assert not Target("overhead", 1.6, 1.3, at_most=True).met
    assert Target("overhead", 1.2, 1.3, at_most=True).met
    with pytest.raises(KeyError, match="no measurement of 'other'"):
        result.wall("case", "other")


def test_interleaved_medians_time_the_runs_in_turns():
    order: list[str] = []
    runs = {name: (lambda name=name: order.append(name)) for name in ("a", "b", "c")}
    medians = interleaved_medians(runs, Settings(repeats=4, budget_s=60.0))
    assert set(medians) == {"a", "b", "c"} and all(m >= 0 for m in medians.values())
    # One warm-up call each, then 4 rounds that call every run once, in the same order.
    assert order == ["a", "b", "c"] * 5
    order.clear()
    interleaved_medians(runs, Settings(repeats=20, budget_s=0.0))
    assert order == ["a", "b", "c"] * 4  # past its budget, it stops after the 3 rounds it always takes


def test_loglog_slope_recovers_a_power_law():
    xs = [16, 64, 256, 1024]
    assert loglog_slope(xs, [3 * x**1.5 for x in xs]) == pytest.approx(1.5)


def test_equal_error_ratio_interpolates_the_peer_curve_log_log():
    ours = [(1e-4, 1.0)]
    peer = [(1e-3, 1.0), (1e-5, 4.0)]  # at 1e-4 the peer needs 2.0
    assert slowest_ratio_at_equal_error(ours, peer) == pytest.approx(2.0)
    assert math.isnan(slowest_ratio_at_equal_error([(1e-7, 1.0)], peer))  # outside the peer's range: no ratio


def test_a_sweep_records_error_and_wall_per_tolerance_and_the_equal_error_targets_take_the_worst_point(monkeypatch):
    reference = torch.zeros(3)
    # Errors equal to the tolerance; the peer's wall is twice ours at 1e-2 and 1e-3, 1.5x at 1e-4.
    walls = {"neuralct": {1e-2: 1.0, 1e-3: 2.0, 1e-4: 4.0}, "peer": {1e-2: 2.0, 1e-3: 4.0, 1e-4: 6.0}}
    forwards = {library: lambda tol: lambda tol=tol: torch.full((3,), tol, dtype=torch.float64) for library in walls}

    def timed_in_turns(runs: dict, settings: Settings) -> dict[str, float]:
        tol = float(next(iter(runs.values()))()[0])
        return {library: walls[library][tol] for library in runs}

    monkeypatch.setattr(precision, "interleaved_medians", timed_in_turns)
    result = _result()
    curves = sweep(result, Settings(), "wp", forwards, [1e-2, 1e-3, 1e-4], reference, evals=lambda forward: 7)
    assert [(row.case, row.library) for row in result.rows[2:4]] == [
        ("wp, tol 0.01", "neuralct"),
        ("wp, tol 0.01", "peer"),
    ]
    assert curves["peer"] == [(1e-2, 2.0), (1e-3, 4.0), (1e-4, 6.0)]
    assert all(row.evals == 7 for row in result.rows[2:])
    equal_error_targets(result, "wp", curves)
    (target,) = result.targets
    assert target.description == "wp: peer / neuralct wall at equal error, worst of 3 points"
    assert target.measured == pytest.approx(1.5) and target.met
    equal_error_targets(result, "wp", {"neuralct": [(1e-9, 1.0)], "peer": curves["peer"]})
    assert math.isnan(result.targets[-1].measured) and not result.targets[-1].met


def test_results_are_written_as_json_and_a_markdown_table_with_the_unmet_targets_marked(tmp_path):
    result = _result()
    result.speedup("case", "peer", 5.0)
    result.notes.append("a note")
    info = {"date": "today", "cpu": "cpu", "cores": 2, "threads": 2, "device": "cpu", "python": "3.11"}
    info["versions"] = {"torch": torch.__version__}
    result.targets.append(Target("no point compared", math.nan, 1.0))
    result.seconds, result.budget_s = 12.4, 10.0
    json_path, md_path = write_results([result], info, Settings.create(quick=True), tmp_path)
    assert json_path.name.endswith("core-quick.json") and md_path.name.endswith("core-quick.md")
    payload = json.loads(json_path.read_text())
    assert payload["settings"]["quick"] is True
    assert payload["benchmarks"][0]["targets"][0]["met"] is False
    assert payload["targets"][0]["benchmark"] == "Demo" and payload["benchmarks"][0]["seconds"] == 12.4
    assert len(payload["benchmarks"][0]["rows"]) == 2
    text = md_path.read_text()
    # The targets table comes first, before any benchmark's section.
    assert text.index("### Targets") < text.index("### Run time") < text.index("### Demo")
    assert "| Demo | case: neuralct vs peer, speedup | 3 | >= 5 | **no** |" in text
    assert "| Demo | no point compared | n/a | >= 1 | **no** |" in text and "0 of 2 targets met." in text
    assert "| Demo | 12 | 10 |" in text and "| total | 12 | 10 |" in text
    assert "| case | peer | 30 | 3.00x | 12 |" in text and "- a note" in text


def test_quick_results_never_share_a_file_with_the_full_results():
    quick, full = Settings.create(quick=True), Settings.create(quick=False)
    assert results_stem(quick) == results_stem(full) + "-quick"
    assert results_stem(full, "-gpu") == results_stem(full) + "-gpu"


@pytest.mark.parametrize("name", BENCHMARKS)
def test_every_listed_benchmark_module_has_a_run_function(name):
    assert callable(importlib.import_module(f"benchmarks.{name}").run)

"""The benchmark harness: targets, ratios, slopes and the report files (the benchmarks run in `make bench`)."""

from __future__ import annotations

import importlib
import json

import pytest
import torch

from benchmarks.__main__ import BENCHMARKS
from benchmarks.harness import (
    BenchmarkResult,
    Measurement,
    Settings,
    Target,
    interleaved_medians,
    loglog_slope,
    write_results,
)
from benchmarks.neural_ode import slowest_ratio_at_equal_error


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


def test_results_are_written_as_json_and_a_markdown_table_with_the_unmet_targets_marked(tmp_path):
    result = _result()
    result.speedup("case", "peer", 5.0)
    result.notes.append("a note")
    info = {"date": "today", "cpu": "cpu", "cores": 2, "threads": 2, "device": "cpu", "python": "3.11"}
    info["versions"] = {"torch": torch.__version__}
    json_path, md_path = write_results([result], info, Settings.create(quick=True), tmp_path)
    payload = json.loads(json_path.read_text())
    assert payload["settings"]["quick"] is True
    assert payload["benchmarks"][0]["targets"][0]["met"] is False
    assert len(payload["benchmarks"][0]["rows"]) == 2
    text = md_path.read_text()
    assert "| Demo | case: neuralct vs peer, speedup | 3 | >= 5 | **no** |" in text
    assert "| case | peer | 30 | 3.00x | 12 |" in text and "- a note" in text


@pytest.mark.parametrize("name", BENCHMARKS)
def test_every_listed_benchmark_module_has_a_run_function(name):
    assert callable(importlib.import_module(f"benchmarks.{name}").run)

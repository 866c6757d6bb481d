"""Progress on every long command: a bar redrawn on a terminal, lines in a log, nothing when quiet."""

from __future__ import annotations

import io
import json
import math
import sys
from pathlib import Path

import pytest

from neuralct import registry
from neuralct.cli import main
from neuralct.data.datasets import load
from neuralct.train.loop import BatchReport, evaluate
from neuralct.train.progress import PassBar, ProgressBar, lines

TINY = ["--model", "ode_rnn", "--dataset", "spirals", "--hidden", "4", "--batch-size", "16"]


class Terminal(io.StringIO):
    """What standard error is in an interactive shell."""

    def isatty(self) -> bool:
        return True


class Pipe(io.StringIO):
    """What standard error is under CI or `2> log`."""

    def isatty(self) -> bool:
        return False


def test_the_pass_bar_draws_on_a_terminal_then_wipes_itself_and_is_silent_on_a_pipe_or_when_quiet() -> None:
    written = {}
    for name, stream, quiet in (("terminal", Terminal(), False), ("pipe", Pipe(), False), ("quiet", Terminal(), True)):
        bar = PassBar("test", stream, quiet=quiet, interval=0.0)
        for batch in (1, 2, 3):
            bar(BatchReport(batch, 3, 0.5, 0.75, 12.0))
        written[name] = stream.getvalue()
    assert "\rtest [#######-------------] 1/3  loss 0.5000  acc 0.750  evals/sample 12" in written["terminal"]
    assert "2/3" in written["terminal"] and written["terminal"].endswith("\r")
    assert written["terminal"].split("\r")[-2].strip() == ""  # wiped: what follows starts on a clean line
    assert written["pipe"] == written["quiet"] == ""


def test_lines_are_written_to_a_terminal_and_a_pipe_but_not_when_quiet() -> None:
    streams = {"terminal": Terminal(), "pipe": Pipe(), "quiet": Terminal()}
    for name, stream in streams.items():
        say = lines(stream, quiet=name == "quiet")
        say("point 1/2: lr=0.001,seed=0")
    assert streams["terminal"].getvalue() == streams["pipe"].getvalue() == "point 1/2: lr=0.001,seed=0\n"
    assert streams["quiet"].getvalue() == ""
    quiet_run = Terminal()
    bar = ProgressBar(3, quiet_run, quiet=True, interval=0.0)
    bar.begin(1)
    bar.batch(BatchReport(1, 1, 0.5, 0.75, 12.0))
    bar.note("resumed")
    assert quiet_run.getvalue() == ""


def test_evaluate_reports_every_minibatch_and_ends_on_its_own_result() -> None:
    data = load("spirals", "test", size=40, length=8)
    model = registry.model("ode_rnn", channels=data.channels, hidden=4, outputs=2)
    reports: list[BatchReport] = []
    result = evaluate(model, data, batch_size=16, on_batch=reports.append)
    assert [(r.batch, r.batches) for r in reports] == [(1, 3), (2, 3), (3, 3)]  # ceil(40 / 16) minibatches
    assert reports[-1].loss == pytest.approx(result.loss) and reports[-1].accuracy == pytest.approx(result.accuracy)
    assert all(math.isfinite(r.vf_evals) and r.vf_evals > 0 for r in reports)


def _run(argv: list[str], stream: io.StringIO, monkeypatch) -> tuple[int, str, str]:
    """Exit code, standard output and standard error of `neuralct argv` with `stream` as stderr."""
    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    monkeypatch.setattr(sys, "stdout", out)
    code = main(argv)
    return code, out.getvalue(), stream.getvalue()


def test_evaluate_draws_its_bar_on_a_terminal_only_and_not_with_quiet(tmp_path: Path, monkeypatch, no_plots) -> None:
    run = tmp_path / "run"
    config = tmp_path / "run.json"
    config.write_text(json.dumps({"dataset_options": {"size": 32, "length": 8}}))
    code, _, err = _run(
        ["fit", "--config", str(config), *TINY, "--epochs", "1", "--out", str(run), "--quiet"], Terminal(), monkeypatch
    )
    assert code == 0 and err == ""  # fit --quiet: neither the bar nor the epoch lines
    code, out, err = _run(["evaluate", str(run)], Terminal(), monkeypatch)
    assert code == 0 and "\rtest [" in err and "1/1" in err and json.loads(out)["test_vf_evals"] > 0
    assert _run(["evaluate", str(run)], Pipe(), monkeypatch)[2] == ""
    assert _run(["evaluate", str(run), "--quiet"], Terminal(), monkeypatch)[2] == ""


def test_sweep_says_each_point_and_draws_each_runs_bar_on_a_terminal(tmp_path: Path, monkeypatch, no_plots) -> None:
    spec = {
        "base": {
            "model": "ode_rnn",
            "dataset": "spirals",
            "hidden": 4,
            "epochs": 1,
            "batch_size": 16,
            "dataset_options": {"size": 32, "length": 8},
        },
        "grid": {"lr": [0.001, 0.01]},
    }
    (tmp_path / "grid.json").write_text(json.dumps(spec))
    command = ["sweep", "--config", str(tmp_path / "grid.json"), "--out"]
    code, out, err = _run([*command, str(tmp_path / "a")], Terminal(), monkeypatch)
    assert code == 0 and "| lr | seeds |" in out
    assert "point 1/2: lr=0.001,seed=0\n" in err and "point 2/2: lr=0.01,seed=0\n" in err
    assert "\repoch 1/1 [####################] 2/2" in err  # the inner fit's bar
    code, _, err = _run([*command, str(tmp_path / "b")], Pipe(), monkeypatch)
    assert code == 0 and "point 2/2: lr=0.01,seed=0\n" in err and "epoch 1/1  train loss" in err and "[#" not in err
    code, _, err = _run([*command, str(tmp_path / "c"), "--quiet"], Terminal(), monkeypatch)
    assert code == 0 and err == ""


def test_stability_says_each_section_before_it_runs_and_nothing_with_quiet(tmp_path: Path, monkeypatch) -> None:
    config = tmp_path / "model.json"
    config.write_text(
        json.dumps(
            {"model": "gru_delta", "dataset": "spirals", "hidden": 4, "dataset_options": {"size": 32, "length": 8}}
        )
    )
    command = ["stability", "--config", str(config), "--samples", "2", "--out"]
    code, out, err = _run([*command, str(tmp_path / "a")], Pipe(), monkeypatch)
    said = err.splitlines()
    assert code == 0 and len(said) == 3 and out.startswith("report: ")
    assert said[0].startswith("loading") and said[1].startswith("dynamics") and said[2].startswith("robustness")
    assert _run([*command, str(tmp_path / "b"), "--quiet"], Terminal(), monkeypatch)[2] == ""

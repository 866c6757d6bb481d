"""A run folder: metrics, checkpoints, test result, and resuming a run cut short."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from neuralct.errors import InvalidInputError
from neuralct.train.config import FitConfig
from neuralct.train.run import COLUMNS, fit

SMALL = FitConfig(
    model="gru_delta", dataset="spirals", hidden=8, epochs=4, batch_size=16, dataset_options={"size": 48, "length": 10}
)


def test_a_run_writes_its_config_metrics_checkpoints_and_test_result(tmp_path: Path) -> None:
    rows = []
    result = fit(SMALL, tmp_path, report=rows.append)
    assert [row["epoch"] for row in rows] == [1, 2, 3, 4]
    written = {"config.json", "metrics.csv", "metrics.jsonl", "last.pt", "best.pt", "result.json"}
    assert {p.name for p in tmp_path.iterdir()} == written | {"learning_curves.png", "vf_evals.png"}
    assert min((tmp_path / name).stat().st_size for name in ("learning_curves.png", "vf_evals.png")) > 10_000
    assert FitConfig.from_mapping(json.loads((tmp_path / "config.json").read_text())) == SMALL
    assert (tmp_path / "metrics.csv").read_text().splitlines()[0] == ",".join(COLUMNS)
    assert 0.0 <= result["test_accuracy"] <= 1.0
    assert (
        result["parameters"] == 5 * 8 * 3 + 3 * 8 * 8 + 2 * 3 * 8 + 8 * 2 + 2
    )  # GRU on [x, mask, gap] (C = 2) and head
    assert json.loads((tmp_path / "result.json").read_text()) == result


def test_a_resumed_run_ends_with_the_metrics_of_an_uninterrupted_one(tmp_path: Path) -> None:
    whole = fit(SMALL, tmp_path / "whole", report=lambda row: None)

    def stop_after_two(row: dict) -> None:
        if row["epoch"] == 2:
            raise KeyboardInterrupt  # Ctrl-C after epoch 2 was checkpointed

    with pytest.raises(KeyboardInterrupt):
        fit(SMALL, tmp_path / "cut", report=stop_after_two)
    resumed = fit(None, tmp_path / "cut", resume=True, report=lambda row: None)
    assert resumed == whole
    lines = lambda run: (tmp_path / run / "metrics.jsonl").read_text().splitlines()  # noqa: E731
    strip = lambda rows: [{k: v for k, v in json.loads(r).items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(lines("cut")) == strip(lines("whole"))


def test_a_run_folder_is_never_overwritten_and_resume_needs_a_run(tmp_path: Path) -> None:
    fit(SMALL.replace(epochs=1), tmp_path / "run", report=lambda row: None)
    with pytest.raises(InvalidInputError, match="already holds a run"):
        fit(SMALL, tmp_path / "run")
    with pytest.raises(InvalidInputError, match="nothing to resume"):
        fit(None, tmp_path / "empty", resume=True)


def test_a_diverging_loss_stops_naming_the_epoch_and_keeps_the_last_good_checkpoint(
    tmp_path: Path, monkeypatch
) -> None:
    from neuralct.train import run as run_module
    from neuralct.train.checkpoint import load_checkpoint
    from neuralct.train.run import TrainingDiverged, build_model, load_splits

    real = run_module.train_epoch
    calls = []

    def diverge_in_epoch_two(*args, **kwargs):
        result = real(*args, **kwargs)
        calls.append(1)
        return result if len(calls) < 2 else result.__class__(float("nan"), *list(result.__dict__.values())[1:])

    monkeypatch.setattr(run_module, "train_epoch", diverge_in_epoch_two)
    with pytest.raises(TrainingDiverged, match="epoch 2: the training loss is nan; .*last.pt keeps epoch 1"):
        fit(SMALL, tmp_path, report=lambda row: None)
    model = build_model(SMALL, load_splits(SMALL).train)
    assert load_checkpoint(tmp_path / "last.pt", model=model, restore_rng=False).epoch == 1


def test_a_killed_fit_process_resumes_to_the_metrics_of_an_uninterrupted_run(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    config = SMALL.replace(epochs=40, dataset_options={"size": 96, "length": 16})
    (tmp_path / "run.json").write_text(json.dumps(config.as_dict()))
    killed = tmp_path / "killed"
    process = subprocess.Popen(
        [sys.executable, "-m", "neuralct", "fit", "--config", str(tmp_path / "run.json"), "--out", str(killed)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    metrics = killed / "metrics.jsonl"
    try:
        while process.poll() is None and (not metrics.exists() or len(metrics.read_text().splitlines()) < 3):
            time.sleep(0.01)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    done = len(metrics.read_text().splitlines())
    assert 3 <= done < 40, f"the run was not killed mid-way ({done} epochs)"
    resumed = fit(None, killed, resume=True, report=lambda row: None)
    whole = fit(config, tmp_path / "whole", report=lambda row: None)
    assert resumed == whole
    strip = lambda run: [
        {k: v for k, v in json.loads(r).items() if k != "seconds"}
        for r in (tmp_path / run / "metrics.jsonl").read_text().splitlines()
    ]  # noqa: E731
    assert strip("killed") == strip("whole")


def test_early_stopping_ends_after_patience_epochs_without_improvement(tmp_path: Path, monkeypatch) -> None:
    from neuralct.train import run as run_module

    real = run_module.evaluate
    losses = iter([1.0, 0.5, 0.7, 0.6, 0.9, 0.4])  # best at epoch 2, then three epochs without improvement

    def scripted(model, data, **kwargs):
        result = real(model, data, **kwargs)
        return result.__class__(next(losses, 0.0), *list(result.__dict__.values())[1:])

    monkeypatch.setattr(run_module, "evaluate", scripted)
    rows = []
    fit(SMALL.replace(epochs=6, patience=2), tmp_path, report=rows.append)
    assert [row["epoch"] for row in rows] == [1, 2, 3, 4]
    with pytest.raises(InvalidInputError, match="`patience` must be a positive int"):
        SMALL.replace(patience=0)


def test_a_forecasting_run_trains_one_output_per_horizon_step(tmp_path: Path) -> None:
    config = FitConfig(model="gru_delta", dataset="co2", missing=0.0, hidden=4, epochs=1, batch_size=64)
    result = fit(config, tmp_path, report=lambda row: None)
    assert result["test_accuracy"] is None and result["test_loss"] > 0
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["val_accuracy"] is None

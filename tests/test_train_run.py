"""A run folder: metrics, checkpoints, test result, and resuming a run cut short."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from neuralct.errors import InvalidInputError
from neuralct.train.config import FitConfig
from neuralct.train.progress import Progress
from neuralct.train.run import COLUMNS, fit

SMALL = FitConfig(
    model="gru_delta", dataset="spirals", hidden=8, epochs=4, batch_size=16, dataset_options={"size": 48, "length": 10}
)


class Rows(Progress):
    """Records each epoch's metrics row; `stop_after` raises Ctrl-C once that epoch is checkpointed."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.rows: list[dict] = []
        self.batches = 0
        self.stop_after = stop_after

    def batch(self, report) -> None:
        self.batches += 1

    def epoch(self, row: dict) -> None:
        self.rows.append(row)
        if row["epoch"] == self.stop_after:
            raise KeyboardInterrupt


def test_a_run_writes_its_config_metrics_checkpoints_and_test_result(tmp_path: Path) -> None:
    progress = Rows()
    result = fit(SMALL, tmp_path, progress=progress)
    assert [row["epoch"] for row in progress.rows] == [1, 2, 3, 4]
    assert progress.batches == 4 * 3  # 41 training samples in minibatches of 16
    written = {"config.json", "metrics.csv", "metrics.jsonl", "last.pt", "best.pt", "result.json"}
    plots = {"learning_curves.png", "vf_evals.png", "predictions.png"}
    assert {p.name for p in tmp_path.iterdir()} == written | plots
    assert min((tmp_path / name).stat().st_size for name in plots) > 10_000
    assert FitConfig.from_mapping(json.loads((tmp_path / "config.json").read_text())) == SMALL
    assert (tmp_path / "metrics.csv").read_text().splitlines()[0] == ",".join(COLUMNS)
    assert all(row["grad_norm"] > 0 for row in progress.rows)
    assert 0.0 <= result["test_accuracy"] <= 1.0
    assert (
        result["parameters"] == 5 * 8 * 3 + 3 * 8 * 8 + 2 * 3 * 8 + 8 * 2 + 2
    )  # GRU on [x, mask, gap] (C = 2) and head
    assert json.loads((tmp_path / "result.json").read_text()) == result


def test_a_resumed_run_ends_with_the_metrics_of_an_uninterrupted_one(tmp_path: Path) -> None:
    whole = fit(SMALL, tmp_path / "whole")
    with pytest.raises(KeyboardInterrupt):
        fit(SMALL, tmp_path / "cut", progress=Rows(stop_after=2))  # Ctrl-C after epoch 2 was checkpointed
    resumed = fit(None, tmp_path / "cut", resume=True)
    assert resumed == whole
    lines = lambda run: (tmp_path / run / "metrics.jsonl").read_text().splitlines()  # noqa: E731
    strip = lambda rows: [{k: v for k, v in json.loads(r).items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(lines("cut")) == strip(lines("whole"))


def test_a_run_folder_is_never_overwritten_and_resume_needs_a_run(tmp_path: Path) -> None:
    fit(SMALL.replace(epochs=1), tmp_path / "run")
    with pytest.raises(InvalidInputError, match="already holds a run"):
        fit(SMALL, tmp_path / "run")
    with pytest.raises(InvalidInputError, match="nothing to resume"):
        fit(None, tmp_path / "empty", resume=True)


def _corrupt_on_epoch(monkeypatch, epoch: int, corrupt) -> None:
    """Run `corrupt(model)` just before training epoch `epoch` starts."""
    from neuralct.train import run as run_module

    real, calls = run_module.train_epoch, []

    def corrupted(model, *args, **kwargs):
        calls.append(1)
        if len(calls) == epoch:
            with torch.no_grad():
                corrupt(model)
        return real(model, *args, **kwargs)

    monkeypatch.setattr(run_module, "train_epoch", corrupted)


def test_a_diverging_loss_stops_naming_the_epoch_and_batch_and_keeps_the_last_good_checkpoint(
    tmp_path: Path, monkeypatch
) -> None:
    from neuralct.train.checkpoint import load_checkpoint
    from neuralct.train.loop import TrainingDiverged
    from neuralct.train.run import build_model, load_splits

    _corrupt_on_epoch(monkeypatch, 2, lambda model: model.head.weight.fill_(float("inf")))
    with pytest.raises(
        TrainingDiverged, match=r"epoch 2, batch 1 of 3: the training loss is nan(.|\n)*last.pt keeps epoch 1"
    ):
        fit(SMALL, tmp_path)
    model = build_model(SMALL, load_splits(SMALL).train)
    assert load_checkpoint(tmp_path / "last.pt", model=model, restore_rng=False).epoch == 1
    assert torch.isfinite(model.head.weight).all()  # no step was taken with the non-finite loss


def test_a_failed_solve_stops_naming_the_epoch_batch_and_solver_status(tmp_path: Path, monkeypatch) -> None:
    from neuralct.train.loop import TrainingFailed

    config = SMALL.replace(model="ode_rnn", solver="dopri5", rtol=1e-6, atol=1e-8, max_steps=50)

    def stiffen(model) -> None:  # a flow with a Lipschitz constant of ~1e6: dopri5 runs out of steps
        for parameter in model.parameters():
            parameter.mul_(1e3)

    _corrupt_on_epoch(monkeypatch, 2, stiffen)
    with pytest.raises(TrainingFailed, match=r"epoch 2, batch 1 of 3: the forward solve failed") as failure:
        fit(config, tmp_path)
    message = str(failure.value)
    assert "MAX_STEPS" in message and "Dopri5" in message and "last.pt keeps epoch 1" in message
    assert "throw=False" not in message  # solve()'s advice does not apply inside a training step


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
    resumed = fit(None, killed, resume=True)
    whole = fit(config, tmp_path / "whole")
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
    progress = Rows()
    fit(SMALL.replace(epochs=6, patience=2), tmp_path, progress=progress)
    assert [row["epoch"] for row in progress.rows] == [1, 2, 3, 4]
    with pytest.raises(InvalidInputError, match="`patience` must be a positive int"):
        SMALL.replace(patience=0)


def test_a_forecasting_run_trains_one_output_per_horizon_step(tmp_path: Path) -> None:
    config = FitConfig(model="gru_delta", dataset="co2", missing=0.0, hidden=4, epochs=1, batch_size=64)
    result = fit(config, tmp_path)
    assert result["test_accuracy"] is None and result["test_loss"] > 0
    # In ppm: targets sit near 355, so a head read without the training targets' scale would be off by ~350.
    assert result["test_mae"] < 60.0
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["val_accuracy"] is None and rows[0]["val_mae"] > 0


def test_standardized_targets_read_outputs_in_the_targets_units() -> None:
    from neuralct.data.datasets import load
    from neuralct.models.base import AbstractSequenceModel, ModelOutput
    from neuralct.solution import empty_stats
    from neuralct.train.targets import StandardizedTargets

    class Ones(AbstractSequenceModel):
        def run(self, batch, options=None):
            return ModelOutput(torch.ones(batch.batch_size, 1), empty_stats(batch.batch_size, torch.device("cpu")))

        def default_solve_options(self):
            return "the inner model's numerics"

    data = load("adding", "train", size=32, length=8)
    wrapped = StandardizedTargets(Ones(), data.targets)
    expected = data.targets.double().mean() + data.targets.double().std(correction=0)
    assert torch.allclose(wrapped.run(data).predictions.double(), expected.expand(32, 1), atol=1e-6)
    assert wrapped.default_solve_options() == "the inner model's numerics"
    with pytest.raises(InvalidInputError, match="`targets`"):
        StandardizedTargets(Ones(), torch.tensor([1, 2]))


def test_the_jacobian_monitor_records_the_largest_real_eigenvalue_per_epoch(tmp_path: Path) -> None:
    from neuralct.cli import main

    config = SMALL.replace(model="ltc", epochs=2)
    (tmp_path / "run.json").write_text(json.dumps(config.as_dict()))
    assert (
        main(["fit", "--config", str(tmp_path / "run.json"), "--monitor-jacobian", "--out", str(tmp_path / "ltc")]) == 0
    )
    rows = [json.loads(line) for line in (tmp_path / "ltc" / "metrics.jsonl").read_text().splitlines()]
    assert all(isinstance(row["max_jacobian_real"], float) for row in rows)
    fit(SMALL.replace(epochs=1, monitor_jacobian=True), tmp_path / "jump")  # a jump model: nothing to monitor
    assert json.loads((tmp_path / "jump" / "metrics.jsonl").read_text())["max_jacobian_real"] is None

"""A run folder: metrics, checkpoints, test result, and resuming a run cut short."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from neuralct.errors import CheckpointError, InvalidInputError
from neuralct.stability.jacobian import jacobian_monitor
from neuralct.train.config import FitConfig
from neuralct.train.folder import COLUMNS, LOCK, RunFolderLocked
from neuralct.train.progress import Progress
from neuralct.train.run import fit

SMALL = FitConfig(
    model="gru_delta", dataset="spirals", hidden=8, epochs=4, batch_size=16, dataset_options={"size": 48, "length": 10}
)
TINY = SMALL.replace(epochs=2, dataset_options={"size": 32, "length": 8})


@pytest.fixture
def no_plots(monkeypatch) -> None:
    """Runs that draw no figures (the tests of the folder's history do not look at them)."""
    from neuralct.train import run as run_module

    monkeypatch.setattr(run_module, "plot_run", lambda run_dir: [])
    monkeypatch.setattr(run_module, "plot_predictions", lambda *args, **kwargs: None)


class Rows(Progress):
    """Records each epoch's metrics row; `stop_after` raises Ctrl-C once that epoch is checkpointed."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.rows: list[dict] = []
        self.notes: list[str] = []
        self.batches = 0
        self.stop_after = stop_after

    def note(self, text: str) -> None:
        self.notes.append(text)

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
    written = {"config.json", "data.json", "metrics.csv", "metrics.jsonl", "last.pt", "prev.pt", "best.pt"}
    written |= {"result.json"}
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
    from neuralct.train.build import build_model
    from neuralct.train.checkpoint import load_checkpoint
    from neuralct.train.loop import TrainingDiverged
    from neuralct.train.splits import load_splits

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

    config = SMALL.replace(model="ode_rnn", solver="dopri5", rtol=1e-6, atol=1e-8, max_steps=50, strict=True)
    _corrupt_on_epoch(monkeypatch, 2, _stiffen)
    with pytest.raises(TrainingFailed, match=r"epoch 2, batch 1 of 3: the forward solve failed") as failure:
        fit(config, tmp_path / "strict")
    message = str(failure.value)
    assert "MAX_STEPS" in message and "Dopri5" in message and "last.pt keeps epoch 1" in message
    assert "throw=False" not in message  # solve()'s advice does not apply inside a training step
    _corrupt_on_epoch(monkeypatch, 2, _stiffen)
    with pytest.raises(TrainingFailed, match=r"epoch 2, the solves of all 41 training samples failed"):
        fit(config.replace(strict=False), tmp_path / "lenient")  # failed samples are left out, but none is left


def _stiffen(model) -> None:
    """A flow with a Lipschitz constant of ~1e6: dopri5 runs out of steps on every sample."""
    for parameter in model.parameters():
        parameter.mul_(1e3)


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
    monitored = SMALL.replace(epochs=1, monitor_jacobian=True)
    fit(monitored, tmp_path / "jump", monitor=jacobian_monitor)  # a jump model: nothing to monitor
    assert json.loads((tmp_path / "jump" / "metrics.jsonl").read_text())["max_jacobian_real"] is None
    with pytest.raises(InvalidInputError, match="monitor=neuralct.stability.jacobian_monitor"):
        fit(monitored, tmp_path / "unmonitored")


def _metrics(run_dir: Path) -> list[dict]:
    """The rows of `metrics.jsonl` without their wall-clock seconds."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def _csv_epochs(run_dir: Path) -> list[int]:
    return [int(line.split(",")[0]) for line in (run_dir / "metrics.csv").read_text().splitlines()[1:]]


def test_samples_whose_solves_fail_are_counted_in_the_metrics_and_result_and_the_run_goes_on(
    tmp_path: Path, monkeypatch
) -> None:
    import dataclasses

    from neuralct.train import run as run_module

    real = run_module.load_splits

    def with_outliers(config):  # series 0 of train and test 10^6 times larger: dopri5 runs out of steps on them
        splits = real(config)
        return dataclasses.replace(splits, train=_outlier(splits.train), test=_outlier(splits.test))

    monkeypatch.setattr(run_module, "load_splits", with_outliers)
    monkeypatch.setattr(run_module, "plot_run", lambda run_dir: [])  # the predictions' plot leaves the outlier out
    config = SMALL.replace(model="ncde", solver="dopri5", max_steps=40, epochs=1, hidden=4, bucket=False)
    result = fit(
        config.replace(dataset_options={"size": 32, "length": 8}), tmp_path
    )  # before: TrainingFailed at the outlier's minibatch
    row = json.loads((tmp_path / "metrics.jsonl").read_text())
    assert (row["train_failed"], row["val_failed"], result["test_failed"]) == (1, 0, 1)
    assert json.loads((tmp_path / "result.json").read_text())["test_failed"] == 1
    assert math.isfinite(row["train_loss"]) and math.isfinite(result["test_loss"])


def _outlier(batch):
    """`batch` with the values of its series 0 10^6 times larger."""
    import dataclasses

    scale = torch.ones(batch.batch_size, 1, 1)
    scale[0] = 1e6
    return dataclasses.replace(batch, values=batch.values * scale)


def test_a_fault_during_the_metrics_rewrite_of_a_resume_loses_no_row(tmp_path: Path, monkeypatch, no_plots) -> None:
    import errno
    import os

    fit(TINY, tmp_path)
    before = _metrics(tmp_path)
    real_dumps, real_replace = json.dumps, os.replace

    def full_on_rows(value, *args, **kwargs):  # the disk fills up as the rows are written again
        if isinstance(value, dict) and "train_loss" in value:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_dumps(value, *args, **kwargs)

    monkeypatch.setattr(json, "dumps", full_on_rows)
    with pytest.raises(OSError, match="No space left"):
        fit(None, tmp_path, resume=True)
    monkeypatch.setattr(json, "dumps", real_dumps)
    # before: metrics.jsonl deleted and metrics.csv cut to 1 of its 2 rows
    assert _metrics(tmp_path) == before and _csv_epochs(tmp_path) == [1, 2]

    def killed_on_csv(source, target):  # killed between the two renames
        if str(target).endswith("metrics.csv"):
            raise KeyboardInterrupt
        return real_replace(source, target)

    monkeypatch.setattr(os, "replace", killed_on_csv)
    with pytest.raises(KeyboardInterrupt):
        fit(None, tmp_path, resume=True)
    monkeypatch.undo()
    assert _metrics(tmp_path) == before and _csv_epochs(tmp_path) == [1, 2]
    assert not list(tmp_path.glob("*.tmp")) and not (tmp_path / LOCK).exists()


def test_a_torn_json_row_is_recovered_from_the_csv_on_resume(tmp_path: Path, no_plots) -> None:
    fit(TINY.replace(epochs=3), tmp_path)
    before = _metrics(tmp_path)
    jsonl = tmp_path / "metrics.jsonl"
    lines = jsonl.read_text().splitlines()
    lines[1] = lines[1][: len(lines[1]) // 2]  # row 2 torn
    jsonl.write_text("\n".join(lines) + '\n{"epoch": 4, "train_lo')  # and a row cut by a kill
    fit(None, tmp_path, resume=True)
    assert _metrics(tmp_path) == before  # before: row 2 dropped from both files
    assert _csv_epochs(tmp_path) == [1, 2, 3]


def _killed_before_the_first_checkpoint(monkeypatch, config: FitConfig, run_dir: Path) -> None:
    """Run `config` in `run_dir`, killed as it writes its first `last.pt` (after best.pt and the row)."""
    from neuralct.train import run as run_module

    real = run_module.save_checkpoint

    def killed(path, **kwargs):
        if Path(path).name == "last.pt":
            raise KeyboardInterrupt
        return real(path, **kwargs)

    monkeypatch.setattr(run_module, "save_checkpoint", killed)
    with pytest.raises(KeyboardInterrupt):
        fit(config, run_dir)
    monkeypatch.setattr(run_module, "save_checkpoint", real)
    kept = {"config.json", "data.json", "metrics.csv", "metrics.jsonl", "best.pt"}
    assert {p.name for p in run_dir.iterdir()} == kept


def test_a_run_killed_before_its_first_checkpoint_resumes_from_epoch_0_or_restarts(
    tmp_path: Path, monkeypatch, no_plots
) -> None:
    config = TINY.replace(epochs=1)
    _killed_before_the_first_checkpoint(monkeypatch, config, tmp_path / "resumed")
    progress = Rows()
    resumed = fit(None, tmp_path / "resumed", resume=True, progress=progress)  # before: "nothing to resume"
    note = f"{tmp_path / 'resumed'} has no completed epoch (no last.pt): starting it from epoch 0 with its saved config"
    assert progress.notes == [note]
    _killed_before_the_first_checkpoint(monkeypatch, config, tmp_path / "restarted")
    progress = Rows()
    restarted = fit(config, tmp_path / "restarted", progress=progress)  # before: "already holds a run"
    note = f"{tmp_path / 'restarted'} holds a run with no completed epoch (no last.pt): starting it afresh"
    assert progress.notes == [note]
    assert resumed == restarted and _metrics(tmp_path / "resumed") == _metrics(tmp_path / "restarted")
    assert len(_metrics(tmp_path / "resumed")) == 1  # the killed attempt's row is gone


def test_a_run_folder_is_locked_against_a_second_writer_and_a_stale_lock_is_taken_over(
    tmp_path: Path, no_plots
) -> None:
    import os
    import subprocess
    import sys

    (tmp_path / "run").mkdir()
    (tmp_path / "run" / LOCK).write_text(f"{os.getppid()}\n")  # a live process holds it
    with pytest.raises(RunFolderLocked, match=f"run is in use by process {os.getppid()}"):
        fit(TINY, tmp_path / "run")  # before: both writers went on, their rows interleaved
    assert {p.name for p in (tmp_path / "run").iterdir()} == {LOCK}
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / "run" / LOCK).write_text(ended.stdout)  # the lock of a process that is gone
    fit(TINY.replace(epochs=1), tmp_path / "run")
    assert not (tmp_path / "run" / LOCK).exists()  # released at the end
    from neuralct.train.folder import RunLock

    with RunLock(tmp_path / "other"):
        assert (tmp_path / "other" / LOCK).read_text() == f"{os.getpid()}\n"
        with pytest.raises(RunFolderLocked, match=f"in use by process {os.getpid()}"):
            fit(None, tmp_path / "other", resume=True)
    assert not (tmp_path / "other").exists()  # a folder the lock created and nothing was written to goes again


def test_a_damaged_last_checkpoint_resumes_from_the_previous_one_or_stops_with_a_clear_error(
    tmp_path: Path, no_plots
) -> None:
    fit(TINY, tmp_path)
    before = _metrics(tmp_path)
    last = tmp_path / "last.pt"
    data = bytearray(last.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit
    last.write_bytes(bytes(data))
    progress = Rows()
    fit(None, tmp_path, resume=True, progress=progress)  # before: resumed silently from the damaged weights
    assert "last.pt is damaged" in progress.notes[0] and "resuming from" in progress.notes[0]
    assert "prev.pt (epoch 1) instead" in progress.notes[0]
    assert _metrics(tmp_path) == before  # epoch 2 computed again, to the same numbers
    last.write_bytes(last.read_bytes()[:-100])  # cut short
    (tmp_path / "prev.pt").unlink()
    with pytest.raises(CheckpointError, match="last.pt is damaged.*no previous checkpoint \\(prev.pt\\)"):
        fit(None, tmp_path, resume=True)


def test_a_resumed_run_extends_its_epochs_and_refuses_changes_to_the_model(tmp_path: Path, no_plots) -> None:
    config = TINY.replace(schedule="cosine")
    fit(config, tmp_path)
    fit(None, tmp_path, resume=True, changes={"epochs": 3})
    rows = _metrics(tmp_path)
    assert [row["epoch"] for row in rows] == [1, 2, 3]
    assert json.loads((tmp_path / "config.json").read_text())["epochs"] == 3
    # The cosine re-stretched over 3 epochs from where it was: lr_e = lr (1 + cos(pi (e - 1) / E)) / 2.
    expected = [config.lr, config.lr / 2, config.lr * (1 + math.cos(2 * math.pi / 3)) / 2]
    assert [row["lr"] for row in rows] == pytest.approx(expected, rel=1e-12)
    with pytest.raises(InvalidInputError, match="can change only epochs, patience, strict; got hidden, lr"):
        fit(None, tmp_path, resume=True, changes={"hidden": 16, "lr": 0.1, "seed": TINY.seed})
    with pytest.raises(InvalidInputError, match="`epochs` must be at least the 3 epochs the run completed; got 2"):
        fit(None, tmp_path, resume=True, changes={"epochs": 2})
    assert [row["epoch"] for row in _metrics(tmp_path)] == [1, 2, 3]

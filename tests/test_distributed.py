"""Data-parallel training: 2 CPU processes with gloo against one process with the same global batch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from neuralct.errors import InvalidInputError
from neuralct.train import run as run_module
from neuralct.train.config import FitConfig
from neuralct.train.distributed import Workers

# 54 training samples in global minibatches of 15: shares of 8 and 7, and 5 and 4 in the last one.
CONFIG = FitConfig(
    model="tau_gru", dataset="spirals", hidden=8, epochs=3, batch_size=15, dataset_options={"size": 64, "length": 10}
)
WORKER = Path(__file__).with_name("ddp_worker.py")
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]


def _single_process_run(config: FitConfig, run_dir: Path, monkeypatch) -> tuple[dict, dict]:
    """The test metrics and the parameters at the end of training of a one-process run."""
    finish, kept = run_module._finish, {}

    def keep_then_finish(config, run_dir, model, test, workers):
        kept.update({name: value.detach().clone() for name, value in model.state_dict().items()})
        return finish(config, run_dir, model, test, workers)

    monkeypatch.setattr(run_module, "_finish", keep_then_finish)
    return run_module.fit(config, run_dir), kept


def _rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _assert_same_metrics(rows: list[dict], expected: list[dict]) -> None:
    """Losses and accuracies agree; evaluations per sample are left out, since a continuous model
    also integrates over the padding of its minibatch, and shares are padded to their own longest."""
    assert [row["epoch"] for row in rows] == [row["epoch"] for row in expected]
    for row, reference in zip(rows, expected):
        for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
            assert row[key] == pytest.approx(reference[key], rel=1e-5), (row["epoch"], key)


def test_two_gloo_processes_hold_identical_parameters_and_match_one_process(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "config.json").write_text(json.dumps(CONFIG.as_dict()))
    (tmp_path / "params").mkdir()
    command = [*TORCHRUN, str(WORKER), str(tmp_path / "config.json"), str(tmp_path / "ddp"), str(tmp_path / "params")]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-4000:]
    rank0, rank1 = (torch.load(tmp_path / "params" / f"rank{r}.pt") for r in (0, 1))
    assert rank0.keys() == rank1.keys() and all(torch.equal(rank0[k], rank1[k]) for k in rank0)

    result, single = _single_process_run(CONFIG, tmp_path / "single", monkeypatch)
    for name, value in single.items():
        torch.testing.assert_close(rank0[name], value, rtol=1e-5, atol=1e-6)
    _assert_same_metrics(_rows(tmp_path / "ddp"), _rows(tmp_path / "single"))
    distributed = json.loads((tmp_path / "ddp" / "result.json").read_text())
    assert distributed["parameters"] == result["parameters"] and distributed["test_mae"] is None
    for key in ("test_loss", "test_accuracy"):
        assert distributed[key] == pytest.approx(result[key], rel=1e-5)
    assert {p.name for p in (tmp_path / "ddp").iterdir()} >= {"last.pt", "best.pt", "result.json", "predictions.png"}


def test_fit_nproc_runs_torchrun_and_writes_one_run_folder(tmp_path: Path, monkeypatch) -> None:
    config = CONFIG.replace(model="gru_delta", epochs=2)
    (tmp_path / "run.json").write_text(json.dumps(config.as_dict()))
    command = [sys.executable, "-m", "neuralct", "fit", "--config", str(tmp_path / "run.json")]
    finished = subprocess.run(
        [*command, "--nproc", "2", "--out", str(tmp_path / "ddp")], capture_output=True, text=True, timeout=300
    )
    assert finished.returncode == 0, finished.stderr[-4000:]
    assert finished.stdout.count("run folder:") == 1 and "(2 processes)" in finished.stdout  # rank 0 reports
    assert finished.stderr.count("epoch 2/2  train loss") == 1
    run_module.fit(config, tmp_path / "single")
    _assert_same_metrics(_rows(tmp_path / "ddp"), _rows(tmp_path / "single"))


def test_each_process_takes_its_share_of_a_global_minibatch_with_the_weight_of_its_mean() -> None:
    rows = torch.arange(10, 15)
    shares = [Workers(rank, 2).share(rows) for rank in (0, 1)]
    assert [share.tolist() for share, _ in shares] == [[10, 12, 14], [11, 13]]
    assert [weight for _, weight in shares] == [2 * 3 / 5, 2 * 2 / 5]  # average of weighted means = global mean
    share, weight = Workers(3, 4).share(torch.arange(3))
    assert share.tolist() == [0] and weight == 0.0  # an empty share still takes part, with no weight
    with pytest.raises(InvalidInputError, match="`rank`"):
        Workers(2, 2)

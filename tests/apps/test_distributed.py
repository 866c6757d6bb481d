"""Data-parallel training: 2 CPU processes with gloo against one process with the same global batch,
on one machine and as two single-process "nodes" meeting at a localhost rendezvous, and runs
resumed on another number of processes; the order of a session's teardown."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import weakref
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch import nn

from neuralct import cli
from neuralct.errors import InvalidInputError, NeuralCTError
from neuralct.train import run as run_module
from neuralct.train.config import FitConfig
from neuralct.train.distributed import Workers, session

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


def _nodes(port: int, arguments: list[str], folders: tuple[Path, Path]) -> list[subprocess.CompletedProcess]:
    """Two torchrun "nodes" of one process each, started together in `folders`, meeting at a
    c10d rendezvous on localhost:`port` (as on two machines, but for the host), each running
    `python -m neuralct <arguments>`; their exit codes and output."""
    rendezvous = ["--nnodes=2", "--nproc-per-node=1", "--rdzv-backend=c10d", f"--rdzv-endpoint=localhost:{port}"]
    command = [sys.executable, "-m", "torch.distributed.run", *rendezvous, "-m", "neuralct", *arguments]
    pipes = dict(stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    nodes = [subprocess.Popen(command, cwd=folder, **pipes) for folder in folders]
    try:
        outputs = [node.communicate(timeout=240) for node in nodes]
    finally:
        for node in nodes:
            node.kill()  # a node left waiting at the rendezvous when the other failed
    return [subprocess.CompletedProcess(command, node.returncode, *output) for node, output in zip(nodes, outputs)]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


def test_two_one_process_nodes_at_a_localhost_rendezvous_write_one_run_folder_like_one_process(tmp_path: Path) -> None:
    config = CONFIG.replace(model="gru_delta", epochs=2)
    (tmp_path / "run.json").write_text(json.dumps(config.as_dict()))
    arguments = ["fit", "--config", str(tmp_path / "run.json"), "--out", str(tmp_path / "nodes")]
    nodes = _nodes(_free_port(), arguments, (tmp_path, tmp_path))
    assert [node.returncode for node in nodes] == [0, 0], [node.stderr[-4000:] for node in nodes]
    assert sum(node.stdout.count("run folder:") for node in nodes) == 1  # rank 0 alone reports
    assert "(2 processes)" in "".join(node.stdout for node in nodes)
    result = run_module.fit(config, tmp_path / "single")
    _assert_same_metrics(_rows(tmp_path / "nodes"), _rows(tmp_path / "single"))
    distributed = json.loads((tmp_path / "nodes" / "result.json").read_text())
    assert distributed["test_loss"] == pytest.approx(result["test_loss"], rel=1e-5)


def test_a_node_that_does_not_see_the_run_folder_stops_every_node_at_once_leaving_no_folder(tmp_path: Path) -> None:
    # The same relative --out from two working folders: each "machine" has its own disk.
    (tmp_path / "run.json").write_text(json.dumps(CONFIG.replace(model="gru_delta", epochs=2).as_dict()))
    machines = (tmp_path / "a", tmp_path / "b")
    for machine in machines:
        machine.mkdir()
    nodes = _nodes(_free_port(), ["fit", "--config", str(tmp_path / "run.json"), "--out", "run"], machines)
    assert [node.returncode for node in nodes] == [1, 1]  # torchrun's code for a process that failed
    for node in nodes:  # each process's own one-line error (rank 0's as well), before any training
        error = "neuralct: error: the run folder run must be on a file system that every machine mounts"
        assert error in node.stderr and "which process 1 on " in node.stderr, node.stderr[-4000:]
    assert not any((machine / "run").exists() for machine in machines)


@pytest.mark.parametrize("before, after", [(2, 1), (1, 2)])
def test_a_run_resumed_on_another_number_of_processes_ends_as_if_never_stopped(
    tmp_path: Path, before: int, after: int
) -> None:
    config, run_dir = CONFIG.replace(model="gru_delta", epochs=3), tmp_path / "run"
    (tmp_path / "first.json").write_text(json.dumps(config.replace(epochs=1).as_dict()))
    starts = (
        ["fit", "--config", str(tmp_path / "first.json"), "--out", str(run_dir)],
        ["fit", "--resume", str(run_dir), "--epochs", "3"],
    )
    for arguments, nproc in zip(starts, (before, after)):
        if nproc == 1:  # this process, through the same command line
            assert cli.main(arguments) == 0
        else:
            command = [sys.executable, "-m", "neuralct", *arguments, "--nproc", str(nproc)]
            finished = subprocess.run(command, capture_output=True, text=True, timeout=300)
            assert finished.returncode == 0, finished.stderr[-4000:]
    result = run_module.fit(config, tmp_path / "single")
    # The global minibatch and the shuffled order do not depend on the number of processes.
    _assert_same_metrics(_rows(run_dir), _rows(tmp_path / "single"))
    assert [int(line.split(",")[0]) for line in (run_dir / "metrics.csv").read_text().splitlines()[1:]] == [1, 2, 3]
    resumed = json.loads((run_dir / "result.json").read_text())
    assert resumed["test_loss"] == pytest.approx(result["test_loss"], rel=1e-5)


class _Linear(nn.Module):
    """A stand-in sequence model: `run` maps a `[B, 2]` batch to `[B, 2]`."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(2, 2)

    def run(self, batch: torch.Tensor, options: None) -> torch.Tensor:
        return self.layer(batch)


@pytest.mark.parametrize("ending", ["normal", "error"])
def test_a_session_frees_its_data_parallel_wrappers_before_it_destroys_the_process_group(
    ending: str, monkeypatch
) -> None:
    # A wrapper's reducer freed after `destroy_process_group` runs gloo's destructor with the GIL
    # held, which deadlocks against gloo's threads now and then (see `session`). This process plays
    # rank 0 of 2 on a gloo group of its own, so that `Workers.runner` wraps the model.
    port = str(_free_port())
    for name, value in {"WORLD_SIZE": "2", "RANK": "0", "MASTER_ADDR": "localhost", "MASTER_PORT": port}.items():
        monkeypatch.setenv(name, value)
    init, destroy, made, alive_at_destroy = dist.init_process_group, dist.destroy_process_group, [], []
    monkeypatch.setattr(dist, "init_process_group", lambda backend: init(backend, rank=0, world_size=1))

    def recorded_destroy() -> None:
        alive_at_destroy.extend(ref() is not None for ref in made)
        destroy()

    class Recorded(nn.parallel.DistributedDataParallel):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            made.append(weakref.ref(self))
            self.cycle = [self]  # a wrapper that only the garbage collector frees (hooks can make one)

    monkeypatch.setattr(dist, "destroy_process_group", recorded_destroy)
    monkeypatch.setattr(nn.parallel, "DistributedDataParallel", Recorded)
    failure = pytest.raises(InvalidInputError) if ending == "error" else contextlib.nullcontext()
    with failure, session("cpu") as workers:
        run = workers.runner(_Linear())
        run(torch.ones(3, 2), None).sum().backward()
        workers.sum([1.0])
        if ending == "error":  # the traceback's frames hold `run` until the error is handled
            raise InvalidInputError("a failure inside the session")
    assert len(made) == 1 and alive_at_destroy == [False]
    assert not dist.is_initialized()
    with pytest.raises(NeuralCTError, match="`session` has ended"):
        run(torch.ones(3, 2), None)

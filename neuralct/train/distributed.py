"""Data-parallel training over several processes with PyTorch's distributed engine.

A `Workers` value tells the training loop where its process stands: its rank among `world`
processes and the device it trains on. Every process holds the whole (small) dataset and the same
shuffled order of it; each global minibatch of `batch_size` samples is dealt out rank by rank
(`rows[rank::world]`, the distributed-sampler split), the model is wrapped in
`DistributedDataParallel`, and each process weights its loss by its share of the global batch, so
that the averaged gradient is exactly the gradient of the global batch's mean loss: a run on N
processes takes the same steps as a run on one with the same `batch_size`, up to the order of
floating-point sums. Epoch metrics are summed over the processes; only rank 0 writes files and
reports progress.

Processes are started by `torchrun --nproc-per-node N -m neuralct fit ...` or by
`neuralct fit --nproc N` (which runs torchrun itself) on one machine, and on several by torchrun
on each with a shared rendezvous (`torchrun --nnodes M --rdzv-backend c10d --rdzv-endpoint
HOST:PORT ...`); `session()` joins the process group that torchrun describes in the environment
(gloo on CPU, nccl on CUDA) and leaves it at the end, in an order that `session` explains. The
global `RANK` decides the main process, `LOCAL_RANK` the GPU. Every process reads the run folder,
so on several machines it must be on a file system they all mount at the same path
(`Workers.check_shared` stops them at once otherwise).

```python
with session("cpu") as workers:   # one process: Workers(rank=0, world=1), no process group
    fit(config, run_dir, workers=workers)
```
"""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from .._checks import check_int
from ..data.series import IrregularBatch
from ..errors import InvalidInputError, NeuralCTError
from ..models.base import AbstractSequenceModel, ModelOutput, SolveOptions

Runner = Callable[[IrregularBatch, "SolveOptions | None"], ModelOutput]


class Workers:
    """This process's place among the training processes.

    Args:
        rank: this process's index, `0 <= rank < world`.
        world: the number of processes (1: no process group, plain single-process training).
        device: the device this process trains on.
    """

    def __init__(self, rank: int = 0, world: int = 1, device: torch.device | str = "cpu") -> None:
        if not 0 <= rank < world:
            raise InvalidInputError(f"`rank` must be in [0, world={world}); got {rank!r}")
        self.rank, self.world, self.device = rank, world, torch.device(device)
        self._replicas: dict[int, nn.Module] = {}  # the DistributedDataParallel wrappers, by id of their model

    def __repr__(self) -> str:
        return f"Workers(rank={self.rank}, world={self.world}, device={str(self.device)!r})"

    @property
    def main(self) -> bool:
        """Whether this process writes files and reports (rank 0)."""
        return self.rank == 0

    def share(self, rows: Tensor) -> tuple[Tensor, float]:
        """This process's rows of a global minibatch `rows` `[n]`, and the weight of its mean loss.

        The weight `world * len(share) / n` makes the average over processes of the weighted
        local means equal the global mean. A process whose share is empty (a last minibatch
        with fewer samples than processes) gets one row with weight 0, so that it still takes
        part in the gradient exchange.
        """
        mine = rows[self.rank :: self.world]
        if mine.numel() == 0:
            return rows[:1], 0.0
        return mine, self.world * mine.numel() / rows.numel()

    def runner(self, model: AbstractSequenceModel) -> Runner:
        """`model.run`, through `DistributedDataParallel` when there are several processes (made
        once per model: constructing it broadcasts rank 0's parameters to every process).

        The wrapper stays with this `Workers`, which alone holds it: what is returned only looks it
        up, so that the wrapper goes when `session` drops it, whoever still holds the runner (a
        frame of a propagating error's traceback, say)."""
        if self.world == 1:
            return model.run
        if id(model) not in self._replicas:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self._replicas[id(model)] = nn.parallel.DistributedDataParallel(_Run(model), device_ids=device_ids)
        return functools.partial(self._run_replica, id(model))

    def _run_replica(self, key: int, batch: IrregularBatch, options: SolveOptions | None) -> ModelOutput:
        replica = self._replicas.get(key)
        if replica is None:
            raise NeuralCTError("this runner's process group is gone: `session` has ended; train inside it")
        return replica(batch, options)

    def _drop_replicas(self) -> None:
        """Free the `DistributedDataParallel` wrappers, and with them their reducers, now (see
        `session`); one caught in a reference cycle is freed by the collection."""
        self._replicas.clear()
        gc.collect()

    def sum(self, values: Sequence[float]) -> list[float]:
        """`values` summed elementwise over the processes (in float64)."""
        if self.world == 1:
            return [float(v) for v in values]
        total = torch.tensor(values, dtype=torch.float64, device=self._collective_device)
        dist.all_reduce(total)
        return total.tolist()

    def all_ok(self, ok: bool) -> bool:
        """Whether `ok` holds on every process (every process must ask)."""
        return self.sum([float(not ok)])[0] == 0

    def gather(self, value: Any) -> list[Any]:
        """Every process's `value` (any picklable object), in rank order."""
        if self.world == 1:
            return [value]
        values: list[Any] = [None] * self.world
        dist.all_gather_object(values, value)
        return values

    def from_main(self, value: Any) -> Any:
        """Rank 0's `value`, on every process."""
        return self.gather(value)[0]

    def check_shared(self, path: Path) -> None:
        """Check that every process reads at `path` the file that rank 0 has just written there
        (every process must ask). Rank 0 alone writes the run folder, but every process reads
        from it (the checkpoint it resumes from, the best one it tests), so on several machines
        the folder must be on a file system that all of them mount at the same path; a machine
        that does not see it would otherwise train on and fail only at the end.

        Raises:
            InvalidInputError: on every process, naming the processes and machines that do not
                see rank 0's file.
        """
        if self.world == 1:
            return
        seen = self.gather((socket.gethostname(), path.read_bytes() if path.is_file() else None))
        blind = [f"process {rank} on {host}" for rank, (host, data) in enumerate(seen) if data != seen[0][1]]
        if blind:
            raise InvalidInputError(
                f"the run folder {path.parent} must be on a file system that every machine mounts at the same "
                f"path (rank 0 on {seen[0][0]} writes it, every process reads it); rank 0 wrote {path}, which "
                f"{', '.join(blind)} {'does' if len(blind) == 1 else 'do'} not see (give an absolute path on a "
                "shared file system)"
            )

    @property
    def _collective_device(self) -> torch.device:
        return self.device if dist.get_backend() == "nccl" else torch.device("cpu")


class _Run(nn.Module):
    """`model.run` as a module's forward, so that `DistributedDataParallel` can wrap it."""

    def __init__(self, model: AbstractSequenceModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: IrregularBatch, options: SolveOptions | None) -> ModelOutput:
        return self.model.run(batch, options)


@contextlib.contextmanager
def session(device: str = "cpu") -> Iterator[Workers]:
    """The `Workers` of this process: a process group joined from torchrun's environment
    (`RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR`, `MASTER_PORT`) when `WORLD_SIZE > 1`,
    gloo for `device="cpu"` and nccl for `"cuda"` (each process on GPU `LOCAL_RANK`); else a
    single process on `device`. The group is left when the block ends.

    The teardown runs in this order: a barrier (after a block that ends normally), so that no
    process leaves while another still writes; then the `DistributedDataParallel` wrappers of
    `Workers.runner` are freed while the group lives; and only then is the group destroyed. A
    wrapper's reducer holds the group from C++: freed after `destroy_process_group`, it would drop
    the group's last reference, running gloo's destructor with the GIL held; that destructor joins
    gloo's worker threads, and one of them may still be freeing the barrier's work, whose earlier
    all-reduce holds a tensor that needs the GIL to go: a deadlock (pytorch issue 75097). Freed
    first, the last reference is the group's Python object, which `destroy_process_group` drops
    and whose destructor releases the GIL.

    Raises:
        InvalidInputError: `device` is not "cpu" or a CUDA device, or CUDA is asked for but absent.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    kind = torch.device(device).type
    if kind not in ("cpu", "cuda"):
        raise InvalidInputError(f"`device` must be 'cpu' or 'cuda' (or 'cuda:N'); got {device!r}")
    if kind == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError("`device` is 'cuda' but torch sees no CUDA device")
    if world == 1:
        yield Workers(device=device)
        return
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    placed = torch.device("cuda", local) if kind == "cuda" else torch.device("cpu")
    if kind == "cuda":
        torch.cuda.set_device(placed)
    dist.init_process_group("nccl" if kind == "cuda" else "gloo")
    workers = Workers(rank, world, placed)
    try:
        yield workers
        dist.barrier()  # leave together: a process that leaves while another still writes aborts gloo
    finally:
        workers._drop_replicas()  # the reducers go while the group lives, never after it
        dist.destroy_process_group()


def launch(nproc: int, arguments: Sequence[str]) -> int:
    """Run `python -m neuralct <arguments>` on `nproc` processes with torchrun (standalone, on
    this machine); returns its exit status."""
    check_int("nproc", nproc)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
    return subprocess.call([*command, "-m", "neuralct", *arguments])


__all__ = ["Workers", "launch", "session"]

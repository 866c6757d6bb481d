"""LSSL convolution vs recurrence: forward + backward time and saved-activation memory against L.

One `LSSL` layer with H = N = 64, M = 1, batch 4, float32, GBT (bilinear) discretization, A and
the steps trained (so the kernel is rebuilt at every call, as in training), on one thread by
default (`--threads`): a 2-thread run on a busy 2-core machine times the scheduler, not the method. For L = 1k, 4k, 16k
we time forward plus backward of a mean-square loss (median of repeats, after a warm-up) and
measure the memory autograd keeps for the backward pass: the bytes of the distinct storages
saved by every operation (`torch.autograd.graph.saved_tensors_hooks`), which is the activation
memory a training step holds at its peak, not counting parameters or transient buffers freed
during the forward pass. (`tracemalloc` cannot see torch's allocator and CPU torch has no
`max_memory_allocated`.)

The recurrence is a Python loop of L steps; at lengths above `--recurrent-steps` it is timed on
that many steps (measured once) and extrapolated linearly (time and memory are linear in L); such
rows are marked.
The convolution builds its kernel with about log2 L batched matmuls and applies it by FFT, so its
cost grows like L log L; the table ends with the measured growth from the shortest to the
longest L against that law. Run: `python benchmarks/ssm.py [--lengths 1024 4096 16384]`.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch

from neuralct.models.lssl import LSSL

WIDTH = STATE = 64
BATCH = 4


def saved_bytes(run) -> int:
    """Bytes of the distinct storages autograd saves while `run()` builds its graph."""
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        run()
    return sum(storages.values())


def measure(layer: LSSL, length: int, mode: str, repeats: int) -> tuple[float, float]:
    """Median seconds of forward + backward, and MiB saved for backward, at sequence length `length`."""
    u = torch.randn(BATCH, length, WIDTH)

    def step() -> None:
        layer.zero_grad()
        layer(u, mode=mode).square().mean().backward()

    step()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    memory = saved_bytes(lambda: layer(u, mode=mode)) / 2**20
    return statistics.median(times), memory


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[1024, 4096, 16384])
    parser.add_argument("--recurrent-steps", type=int, default=16384, help="longest recurrence timed directly")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    recurrent: dict[int, tuple[float, float]] = {}
    layer = LSSL(WIDTH, STATE)
    print(f"LSSL H = N = {WIDTH}, batch {BATCH}, float32, {torch.get_num_threads()} threads; forward + backward")
    print(f"{'L':>6} | {'conv s':>8} {'conv MiB':>9} | {'recur s':>8} {'recur MiB':>9} | {'time ratio':>10}")
    rows = []
    for length in args.lengths:
        conv_time, conv_memory = measure(layer, length, "conv", args.repeats)
        steps = min(length, args.recurrent_steps)
        if steps not in recurrent:
            recurrent[steps] = measure(layer, steps, "recurrent", 1)
        recur_time, recur_memory = (value * length / steps for value in recurrent[steps])
        mark = "*" if steps < length else " "
        rows.append({"length": length, "conv_s": conv_time, "conv_mib": conv_memory, "recurrent_s": recur_time})
        rows[-1].update(recurrent_mib=recur_memory, ratio=recur_time / conv_time, extrapolated=steps < length)
        print(
            f"{length:>6} | {conv_time:8.3f} {conv_memory:9.1f} | {recur_time:8.3f}{mark}{recur_memory:9.1f}{mark}"
            f"| {recur_time / conv_time:9.1f}x"
        )
    if any(row["extrapolated"] for row in rows):
        print(f"* recurrence timed on {args.recurrent_steps} steps and extrapolated linearly")
    first, last = rows[0], rows[-1]
    law = last["length"] * math.log(last["length"]) / (first["length"] * math.log(first["length"]))
    print(
        f"convolution time grew {last['conv_s'] / first['conv_s']:.1f}x from L = {first['length']} to "
        f"{last['length']}; L log L predicts {law:.1f}x (linear in L: {last['length'] / first['length']:.0f}x)"
    )
    return rows


if __name__ == "__main__":
    main()

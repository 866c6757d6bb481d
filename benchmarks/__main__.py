"""Run the benchmark suite and write `benchmarks/results/<machine>.json` and `.md`.

`python -m benchmarks [--quick] [--only NAME ...] [--device cuda] [--threads N]`. Each
benchmark module (see `BENCHMARKS`) times neuralct and its peer in this one process; the
Markdown file is what `docs/benchmarks.md` includes.
"""

from __future__ import annotations

import argparse
import importlib
import time
from pathlib import Path

import torch

from benchmarks.harness import Settings, machine_info, write_results

BENCHMARKS = ("neural_ode", "heterogeneous", "ncde", "sde", "ltc", "dde", "ssm", "scan", "scaling", "memory")
RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats (minutes, not tens)")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, help="run only these benchmarks")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"results folder (default: {RESULTS})")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = Settings.create(args.quick, args.device)
    results = []
    for name in args.only or BENCHMARKS:
        start = time.perf_counter()
        results.append(importlib.import_module(f"benchmarks.{name}").run(settings))
        print(f"{name}: {time.perf_counter() - start:.0f} s", flush=True)
    json_path, md_path = write_results(results, machine_info(settings.device), settings, args.output)
    print(md_path.read_text())
    print(f"wrote {json_path} and {md_path}")


if __name__ == "__main__":
    main()

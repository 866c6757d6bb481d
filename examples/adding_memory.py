"""A long-memory probe: the adding task for tau-GRU and the noisy RNN, against a GRU.

Each sequence holds T numbers in [0, 1) and two markers, one in each half; the target is the sum
of the two marked numbers. Predicting the mean scores MSE 1/6 (the dashed line every model must
get under to show that it remembers across about T/2 steps). tau-GRU (delay equation, method of
steps) and the noisy RNN (Lipschitz RNN as an SDE) are each trained under their natural numerics
and a second solver; a GRU given the time gaps is the discrete baseline.

    python examples/adding_memory.py            # T = 50 (about 12 minutes on 2 cores)
    python examples/adding_memory.py --small    # CI-sized: seconds
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import torch

import neuralct as nct
from neuralct.data.datasets import load
from neuralct.models.base import AbstractSequenceModel, SolveOptions
from neuralct.models.baselines import GRUDelta
from neuralct.models.noisy_rnn import NoisyRNN
from neuralct.models.tau_gru import TauGRU
from neuralct.train import evaluate, train_epoch

BASELINE_MSE = 1 / 6


class Config(NamedTuple):
    length: int = 50
    train_size: int = 4000
    test_size: int = 500
    hidden: int = 32
    epochs: int = 12
    batch: int = 50
    lr: float = 1e-2
    delay_steps: int = 12  # tau-GRU's delay, in observation steps
    seed: int = 0


SMALL = Config(length=16, train_size=64, test_size=32, hidden=8, epochs=1, batch=32, delay_steps=4)


class Run(NamedTuple):
    model: str
    solver: str
    test_mse: float
    epoch_seconds: float
    vf_evals: float


def models(config: Config) -> dict[str, tuple[Callable[[], AbstractSequenceModel], SolveOptions | None]]:
    """name -> (constructor, training options or None for the model's own)."""
    step = 1.0 / (config.length - 1)  # the dataset's times are index / (T - 1)
    tau = config.delay_steps * step

    def tau_gru() -> AbstractSequenceModel:
        return TauGRU(2, config.hidden, 1, delays=(tau,), first_gap=step)

    def noisy_rnn() -> AbstractSequenceModel:
        return NoisyRNN(2, config.hidden, 1, additive=0.05, multiplicative=0.02, first_gap=step)

    return {
        "tau_gru": (tau_gru, None),
        "tau_gru (RK4 per gap)": (tau_gru, SolveOptions(nct.MethodOfSteps(nct.RK4()), nct.KnotToKnot())),
        "noisy_rnn": (noisy_rnn, None),
        "noisy_rnn (Milstein)": (noisy_rnn, SolveOptions(nct.Milstein(), nct.KnotToKnot())),
        "gru_delta": (lambda: GRUDelta(2, config.hidden, 1), None),
    }


def fit(build: Callable[[], AbstractSequenceModel], options: SolveOptions | None, config: Config) -> Run:
    train = load("adding", "train", seed=config.seed, size=config.train_size, length=config.length)
    test = load("adding", "test", seed=config.seed, size=config.test_size, length=config.length)
    torch.manual_seed(config.seed)
    model = build()
    label = _label(options if options is not None else model.default_solve_options())
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    generator = torch.Generator().manual_seed(config.seed)
    seconds = [
        train_epoch(
            model, train, optimizer, batch_size=config.batch, generator=generator, options=options, clip_norm=1.0
        ).seconds
        for _ in range(config.epochs)
    ]
    result = evaluate(model, test, options=options)
    return Run("", label, result.loss, sum(seconds) / len(seconds), result.vf_evals)


def _label(options: SolveOptions | None) -> str:
    return "(discrete)" if options is None else options.describe()


def run(config: Config, out: Path | None = None) -> list[Run]:
    runs = []
    for name, (build, options) in models(config).items():
        start = time.perf_counter()
        runs.append(fit(build, options, config)._replace(model=name))
        r = runs[-1]
        print(
            f"{name:24s} {r.solver:34s} test MSE {r.test_mse:.4f} (baseline {BASELINE_MSE:.4f})"
            f"  {r.epoch_seconds:.1f} s/epoch  {r.vf_evals:.0f} evals/sample  ({time.perf_counter() - start:.0f} s)",
            flush=True,
        )
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "adding_memory.json").write_text(json.dumps([r._asdict() for r in runs], indent=1))
    return runs


def main(argv: list[str] | None = None) -> list[Run]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="CI-sized run")
    parser.add_argument("--out", type=Path, default=Path("examples/output"), help="folder for the results")
    args = parser.parse_args(argv)
    return run(SMALL if args.small else Config(), args.out)


if __name__ == "__main__":
    main()

"""Every nonlinear continuous-time model of neuralct on irregularly sampled real data.

JapaneseVowels (9 speakers, 12 LPC channels, 7-29 frames) with 30%, 50% and 70% of each
channel's observations dropped at random (the Kidger et al. 2020 protocol, per channel). Each
model is trained under its natural numerics and again under a general adaptive solver (the
discrete baselines have no solver to swap), and the table reports test accuracy, the seconds per
training epoch and the vector-field evaluations per sample of a forward pass.

    python examples/irregular_models.py                      # the full table (about an hour on 2 cores)
    python examples/irregular_models.py --models ltc ncde    # a subset
    python examples/irregular_models.py --small              # CI-sized: seconds
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
from neuralct.data import Normalize
from neuralct.data.datasets import load
from neuralct.models.ancde import ANCDE
from neuralct.models.base import AbstractSequenceModel, SolveOptions
from neuralct.models.baselines import GRUD, ODERNN, GRUDelta
from neuralct.models.cfc import CfC
from neuralct.models.ltc import LTC
from neuralct.models.ncde import NeuralCDE
from neuralct.models.noisy_rnn import NoisyRNN
from neuralct.models.tau_gru import TauGRU
from neuralct.train import evaluate, train_epoch


class Config(NamedTuple):
    rates: tuple[float, ...] = (0.3, 0.5, 0.7)
    models: tuple[str, ...] = ("ltc", "cfc", "ncde", "ancde", "noisy_rnn", "tau_gru", "gru_d", "ode_rnn", "gru_delta")
    hidden: int = 64
    epochs: int = 60
    batch: int = 16
    seed: int = 0
    solvers: str = "both"  # "natural", "general" (the second solver) or "both"
    train_size: int | None = None  # None: all 270 training series


SMALL = Config(rates=(0.5,), hidden=8, epochs=1, train_size=32)
ADAPTIVE = SolveOptions(nct.Tsit5(), nct.PIDController(rtol=1e-3, atol=1e-4))


class Spec(NamedTuple):
    build: Callable[[int, int, int], AbstractSequenceModel]  # (channels, hidden, classes) -> model
    general: SolveOptions | None  # a second, general solver it is also trained with (None: discrete model)
    lr: float = 3e-3


ONE_PER_GAP_RK4 = SolveOptions(nct.RK4(), nct.KnotToKnot())
MODELS: dict[str, Spec] = {
    "ltc": Spec(lambda c, h, o: LTC(c, h, o), ADAPTIVE, lr=1e-2),  # ncps recommends 0.01-0.02 for the LTC
    "cfc": Spec(lambda c, h, o: CfC(c, h, o), None),
    "ncde": Spec(lambda c, h, o: NeuralCDE(c, h, o), ONE_PER_GAP_RK4),
    "ancde": Spec(lambda c, h, o: ANCDE(c, h, o), ONE_PER_GAP_RK4),
    "noisy_rnn": Spec(
        lambda c, h, o: NoisyRNN(c, h, o, additive=0.05, multiplicative=0.02),
        SolveOptions(nct.Milstein(), nct.KnotToKnot()),
    ),
    "tau_gru": Spec(
        lambda c, h, o: TauGRU(c, h, o),
        SolveOptions(nct.MethodOfSteps(nct.Tsit5()), nct.PIDController(rtol=1e-3, atol=1e-4)),
    ),
    "gru_d": Spec(lambda c, h, o: GRUD(c, h, o), None),
    "ode_rnn": Spec(lambda c, h, o: ODERNN(c, h, o), ADAPTIVE),
    "gru_delta": Spec(lambda c, h, o: GRUDelta(c, h, o), None),
}


class Row(NamedTuple):
    model: str
    solver: str
    rate: float
    epochs: int
    accuracy: float
    epoch_seconds: float
    vf_evals: float
    parameters: int


def fit(name: str, options: SolveOptions | None, rate: float, config: Config) -> Row:
    """Train model `name` under `options` on JapaneseVowels with `rate` of observations dropped."""
    train = load("japanese_vowels", "train", missing_rate=rate, seed=config.seed)
    test = load("japanese_vowels", "test", missing_rate=rate, seed=config.seed)
    if config.train_size is not None:
        train = train.select(slice(0, config.train_size))
    normalize = Normalize.fit(train)
    train, test = normalize(train), normalize(test)
    torch.manual_seed(config.seed)
    spec = MODELS[name]
    model = spec.build(train.channels, config.hidden, 9)
    label = _label(options if options is not None else model.default_solve_options())  # the training numerics
    optimizer = torch.optim.Adam(model.parameters(), lr=spec.lr)
    generator = torch.Generator().manual_seed(config.seed)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    seconds = []
    for _ in range(config.epochs):
        seconds.append(
            train_epoch(model, train, optimizer, batch_size=config.batch, generator=generator, options=options).seconds
        )
        schedule.step()
    result = evaluate(model, test, options=options)
    parameters = sum(p.numel() for p in model.parameters())
    return Row(
        name, label, rate, config.epochs, result.accuracy, sum(seconds) / len(seconds), result.vf_evals, parameters
    )


def _label(options: SolveOptions | None) -> str:
    return "(discrete)" if options is None else options.describe()


def markdown(rows: list[Row]) -> str:
    lines = [
        "| model | solver | dropped | epochs | test accuracy | s / epoch | evals / sample | parameters |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cells = (
            r.model,
            r.solver,
            f"{r.rate:.0%}",
            str(r.epochs),
            f"{r.accuracy:.1%}",
            f"{r.epoch_seconds:.2f}",
            f"{r.vf_evals:.0f}",
        )
        lines.append("| " + " | ".join((*cells, str(r.parameters))) + " |")
    return "\n".join(lines)


def run(config: Config, out: Path | None = None) -> list[Row]:
    rows = []
    for name in config.models:
        general = MODELS[name].general
        chosen = {"natural": (None,), "general": (general,), "both": (None, general)}[config.solvers]
        for options in chosen if general is not None else (None,):
            for rate in config.rates:
                start = time.perf_counter()
                rows.append(fit(name, options, rate, config))
                print(markdown(rows[-1:]).splitlines()[-1], f"({time.perf_counter() - start:.0f} s)", flush=True)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "irregular_models.md").write_text(markdown(rows) + "\n")
        (out / "irregular_models.json").write_text(json.dumps([r._asdict() for r in rows], indent=1))
    return rows


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="CI-sized run")
    parser.add_argument("--models", nargs="+", choices=list(MODELS), help="subset of models")
    parser.add_argument("--epochs", type=int, help="training epochs")
    parser.add_argument("--solvers", choices=("natural", "general", "both"), default="both", help="which numerics")
    parser.add_argument("--out", type=Path, default=Path("examples/output"), help="folder for the table")
    args = parser.parse_args(argv)
    config = SMALL if args.small else Config()
    if args.models:
        config = config._replace(models=tuple(args.models))
    config = config._replace(solvers=args.solvers)
    if args.epochs:
        config = config._replace(epochs=args.epochs)
    rows = run(config, args.out)
    print(markdown(rows))
    return rows


if __name__ == "__main__":
    main()

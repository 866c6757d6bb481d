"""The `neuralct` command line: `neuralct fit` trains a model in a run folder, `neuralct evaluate`
re-scores it (under other numerics if asked), `neuralct list` shows what can be named.

```text
neuralct fit                                   # the default model on the default dataset
neuralct fit --model ltc --solver dopri5 --rtol 1e-4 --missing 0.5 --epochs 20 --seed 1
neuralct fit --config run.yaml --out runs/ltc  # a YAML (or JSON) config, flags override it
neuralct fit --nproc 2 --out runs/ddp          # data-parallel on 2 processes (torchrun)
neuralct fit --resume runs/ltc                 # continue a run that was stopped
neuralct evaluate runs/ltc --solver rk4        # the trained model under another solver
neuralct sweep --config grid.json --out runs/grid  # models x solvers x missing rates x seeds
neuralct stability runs/ltc                    # Jacobian spectra, stability regions, Lyapunov, robustness
neuralct list                                  # models, solvers, controllers, datasets
```
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

from . import registry
from .data.datasets import available
from .errors import InvalidInputError, NeuralCTError
from .train.config import SCHEDULES, FitConfig, read_mapping
from .train.distributed import launch, session
from .train.progress import ProgressBar
from .train.run import evaluate_run, fit
from .train.sweep import sweep

_FLAGS = {  # config field -> (type, help)
    "model": (str, "model name (see `neuralct list`)"),
    "dataset": (str, "dataset name"),
    "missing": (float, "fraction of observations dropped, in [0, 1)"),
    "solver": (str, "solver name (default: the model's own numerics)"),
    "controller": (str, "step-size controller: pid, constant or knots"),
    "rtol": (float, "relative tolerance of the pid controller"),
    "atol": (float, "absolute tolerance of the pid controller"),
    "step": (float, "fixed step size (a fixed-step solver with --step alone takes constant steps)"),
    "hidden": (int, "hidden units"),
    "epochs": (int, "training epochs"),
    "batch_size": (int, "minibatch size"),
    "lr": (float, "Adam's initial learning rate"),
    "schedule": (str, "learning-rate schedule: " + ", ".join(f"{k} ({v})" for k, v in SCHEDULES.items())),
    "seed": (int, "random seed"),
    "clip_norm": (float, "clip the global gradient norm to this value"),
    "patience": (int, "stop after this many epochs without a better validation loss"),
    "max_steps": (int, "steps a solve may take per sample (with --solver)"),
    "device": (str, "cpu or cuda"),
    "monitor_jacobian": (bool, "record the largest real Jacobian eigenvalue along the solves after each epoch"),
}


def parser() -> argparse.ArgumentParser:
    """The argument parser of every command (its `--help` texts are the CLI reference)."""
    main = argparse.ArgumentParser(prog="neuralct", description="Continuous-time sequence models on irregular series.")
    commands = main.add_subparsers(dest="command", required=True)
    fit_parser = commands.add_parser("fit", help="train a model in a run folder", description=_FIT_HELP)
    fit_parser.add_argument("--config", type=Path, help="a YAML or JSON file of config keys; flags override it")
    fit_parser.add_argument("--out", type=Path, help="the run folder (default: runs/<model>-<time>)")
    fit_parser.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue the run in RUN_DIR")
    for name, (kind, text) in _FLAGS.items():
        flag = f"--{name.replace('_', '-')}"
        if kind is bool:
            fit_parser.add_argument(flag, dest=name, action="store_true", default=None, help=text)
        else:
            fit_parser.add_argument(flag, dest=name, type=kind, help=text)
    fit_parser.add_argument("--inner-solver", help=_INNER_HELP)
    fit_parser.add_argument("--nproc", type=int, help=_NPROC_HELP)
    evaluate_parser = commands.add_parser(
        "evaluate", help="re-score a run's best checkpoint, optionally under other numerics or missing rate"
    )
    evaluate_parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a finished run folder")
    for name in ("solver", "controller", "rtol", "atol", "step", "missing"):
        kind, text = _FLAGS[name]
        evaluate_parser.add_argument(f"--{name}", type=kind, help=text)
    evaluate_parser.add_argument("--inner-solver", help=_INNER_HELP)
    sweep_parser = commands.add_parser("sweep", help="a grid of runs and its summary table and plot")
    sweep_parser.add_argument(
        "--config", type=Path, required=True, help='YAML or JSON: {"base": {...}, "grid": {"model": [...], ...}}'
    )
    sweep_parser.add_argument("--out", type=Path, required=True, help="folder for the run folders and the summary")
    stability_parser = commands.add_parser(
        "stability", help="a stability report (figures, numbers, report.md) of a run or of a config's untrained model"
    )
    stability_parser.add_argument("run_dir", nargs="?", type=Path, metavar="RUN_DIR", help="a finished run folder")
    stability_parser.add_argument("--config", type=Path, help="study the untrained model of this YAML or JSON config")
    stability_parser.add_argument("--out", type=Path, help="the report folder (default: RUN_DIR/stability)")
    stability_parser.add_argument("--samples", type=int, default=16, help="test series studied (default 16)")
    commands.add_parser("list", help="models, solvers, controllers and datasets with one-line descriptions")
    return main


_INNER_HELP = "the Runge-Kutta method inside --solver method_of_steps (delay models such as tau_gru)"
_NPROC_HELP = (
    "train data-parallel on N processes of this machine (runs torchrun; the same as "
    "`torchrun --nproc-per-node N -m neuralct fit ...`); --batch-size stays the global minibatch"
)

_FIT_HELP = (
    "Train a model on a dataset with observations dropped at random, writing config.json, metrics.csv, "
    "metrics.jsonl, last.pt, best.pt, result.json and PNG plots into the run folder. Defaults: "
    + ", ".join(f"{f.name}={f.default!r}" for f in fields(FitConfig) if f.name in _FLAGS)
)


def reference_markdown() -> str:
    """The command-line reference page (`docs/cli.md`): every command's `--help` text."""
    main_parser = parser()
    commands = next(a for a in main_parser._actions if isinstance(a, argparse._SubParsersAction))
    parts = [
        "# Command-line reference",
        "",
        "Generated from the `--help` texts (`python -m neuralct.cli --reference`).",
        "",
    ]
    for name, sub in [("neuralct", main_parser), *((f"neuralct {n}", p) for n, p in commands.choices.items())]:
        sub.formatter_class = functools.partial(argparse.HelpFormatter, width=100)  # not the terminal's width
        parts += [f"## `{name}`", "", "```text", sub.format_help().rstrip(), "```", ""]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit status (2 for a bad config or input, with its message)."""
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    try:
        if args.command == "list":
            _list()
        elif args.command == "sweep":
            spec = read_mapping(args.config)
            sweep(spec.get("base", {}), spec.get("grid", {}), args.out)
            print((args.out / "summary.md").read_text())
        elif args.command == "stability":
            _stability(args)
        elif args.command == "evaluate":
            changes = {k: getattr(args, k) for k in ("solver", "controller", "rtol", "atol", "step", "missing")}
            changes = {k: v for k, v in changes.items() if v is not None} | _inner(args)
            print(json.dumps(evaluate_run(args.run_dir, **changes)))
        else:
            return _fit(args, argv)
    except NeuralCTError as error:
        print(f"neuralct: error: {error}", file=sys.stderr)
        return 2
    return 0


def _fit(args: argparse.Namespace, argv: list[str]) -> int:
    if args.nproc is not None:
        return launch(args.nproc, _without_nproc(argv))
    config = None if args.resume is not None else _config(args)
    device = config.device if config is not None else FitConfig.from_file(args.resume / "config.json").device
    with session(device) as workers:
        out = args.resume or args.out or Path("runs") / f"{config.model}-{time.strftime('%Y%m%d-%H%M%S')}"
        out = workers.from_main(out)  # one folder, whatever each process's clock says
        say = print if workers.main else _silent
        say(f"run folder: {out}" + (f" ({workers.world} processes)" if workers.world > 1 else ""))
        progress = ProgressBar(config.epochs if config else _saved_epochs(out))
        result = fit(config, out, resume=args.resume is not None, progress=progress, workers=workers)
        say(json.dumps(result))
    return 0


def _config(args: argparse.Namespace) -> FitConfig:
    flags = {name: getattr(args, name) for name in _FLAGS if getattr(args, name) is not None} | _inner(args)
    return FitConfig.from_file(args.config, **flags) if args.config else FitConfig.from_mapping(flags)


def _saved_epochs(run_dir: Path) -> int:
    return FitConfig.from_file(run_dir / "config.json").epochs


def _without_nproc(argv: list[str]) -> list[str]:
    """The command line with `--nproc N` (or `--nproc=N`) taken out."""
    kept, skip = [], False
    for argument in argv:
        if skip:
            skip = False
        elif argument == "--nproc":
            skip = True
        elif not argument.startswith("--nproc="):
            kept.append(argument)
    return kept


def _silent(*args: object) -> None:
    """Print nothing (processes other than rank 0)."""


def _stability(args: argparse.Namespace) -> None:
    from .stability.report import config_report, stability_report  # figures and SciPy: loaded only here

    if (args.run_dir is None) == (args.config is None):
        raise InvalidInputError("give exactly one of RUN_DIR (a finished run) and --config (an untrained model)")
    if args.config is not None:
        config = FitConfig.from_file(args.config)
        out = args.out or Path("runs") / f"stability-{config.model}-{time.strftime('%Y%m%d-%H%M%S')}"
        config_report(config, out, samples=args.samples)
    else:
        out = args.out or args.run_dir / "stability"
        stability_report(args.run_dir, out, samples=args.samples)
    print(f"report: {out / 'report.md'}")


def _inner(args: argparse.Namespace) -> dict[str, Any]:
    """`solver_options` for `--inner-solver`, if given."""
    return {} if args.inner_solver is None else {"solver_options": {"solver": args.inner_solver}}


def _list() -> None:
    for kind in ("model", "solver", "controller"):
        print(f"{kind}s:")
        for name, text in registry.names(kind).items():
            print(f"  {name:28s} {text}")
    print("datasets:")
    for name, text in available().items():
        print(f"  {name:28s} {text}")


if __name__ == "__main__":
    if sys.argv[1:] == ["--reference"]:
        print(reference_markdown(), end="")
        sys.exit(0)
    sys.exit(main())

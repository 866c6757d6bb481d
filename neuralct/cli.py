"""The `neuralct` command line: `neuralct fit` trains a model in a run folder, `neuralct evaluate`
re-scores it (under other numerics if asked), `neuralct list` shows what can be named.

```text
neuralct fit                                   # the default model on the default dataset
neuralct fit --data mine.csv --target label    # your own series: a long CSV, a .ts or an .npz file
neuralct fit --model ltc --solver dopri5 --rtol 1e-4 --missing 0.5 --epochs 20 --seed 1
neuralct fit --config run.yaml --out runs/ltc  # a YAML (or JSON) config, flags override it
neuralct fit --nproc 2 --out runs/ddp          # data-parallel on 2 processes (torchrun)
neuralct fit --resume runs/ltc                 # continue a run that was stopped
neuralct evaluate runs/ltc --solver rk4        # the trained model under another solver
neuralct sweep --config grid.json --out runs/grid  # a grid over any config keys, averaged over seeds
neuralct stability runs/ltc                    # Jacobian spectra, stability regions, Lyapunov, robustness
neuralct list                                  # models, solvers, controllers, datasets
```
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import registry
from .errors import InvalidInputError, NeuralCTError

# Training imports torch (1.3 s): each command imports what it runs, so that `neuralct list` needs none.
if TYPE_CHECKING:
    from .train.config import FitConfig
    from .train.run import Monitor

_FLAGS = {  # config field -> (type, help)
    "model": (str, "model name (see `neuralct list`)"),
    "dataset": (str, "dataset name (see `neuralct list`; default japanese_vowels unless --data is given)"),
    "data": (str, "your own series: a .ts, long-format .csv or .npz file (see the guide 'Fit your own series')"),
    "test_data": (str, "the test file that goes with --data (default: its split column, else a seeded 20%%)"),
    "target": (str, "the target column of a CSV --data file (default: target)"),
    "task": (str, "classification, regression or forecasting (default: decided by the targets)"),
    "normalize": (str, "input scaling fitted on the training split: standard, robust, series, asinh, none, ..."),
    "time_scale": (float, "multiply the times by this (series without times: index * scale)"),
    "missing": (float, "fraction of observations dropped, in [0, 1) (default 0.3 for a dataset, 0 for --data)"),
    "solver": (str, "solver name (default: the model's own numerics)"),
    "controller": (str, "step-size controller: pid, constant or knots"),
    "rtol": (float, "relative tolerance of the pid controller"),
    "atol": (float, "absolute tolerance of the pid controller"),
    "step": (float, "fixed step size (a fixed-step solver with --step alone takes constant steps)"),
    "hidden": (int, "hidden units"),
    "epochs": (int, "training epochs"),
    "batch_size": (int, "minibatch size"),
    "lr": (float, "Adam's initial learning rate"),
    "schedule": (
        str,
        "learning-rate schedule: cosine (annealed to 0 over the epochs), constant, or plateau (halved after 2 "
        "epochs without a better validation loss)",
    ),
    "seed": (int, "random seed"),
    "clip_norm": (float, "clip the global gradient norm to this value"),
    "patience": (int, "stop after this many epochs without a better validation loss"),
    "max_steps": (int, "steps a solve may take per sample (with --solver)"),
    "device": (str, "cpu or cuda"),
    "monitor_jacobian": (bool, "record the largest real Jacobian eigenvalue along the solves after each epoch"),
    "strict": (bool, "stop at the first failed solve (default: leave the failed samples out and count them)"),
    "gradient": (str, "gradients through the solves: backprop, checkpoint:K, backsolve or backsolve-seminorm"),
    "dtype": (str, "float32 or float64 for the model and the data"),
    "compile": (bool, "run each step through torch.compile (explicit RK, LTC, method of steps, SDE on a grid)"),
    "dt0": (float, "first step of an adaptive solve (default: chosen per sample)"),
    "interpolation": (str, "control path of a CDE model (ncde, ancde): limited_hermite, hermite, linear, ..."),
    "workers": (int, "processes that prepare minibatches in the background (default 0: none)"),
    "bucket": (bool, "group minibatches by series length (default on; --no-bucket for random minibatches)"),
}
_EVALUATE_FLAGS = ("solver", "controller", "rtol", "atol", "step", "missing", "test_data", "dtype", "compile", "dt0")
_SWITCHES = {"bucket"}  # on by default: --bucket / --no-bucket


def parser() -> argparse.ArgumentParser:
    """The argument parser of every command (its `--help` texts are the CLI reference)."""
    main = argparse.ArgumentParser(prog="neuralct", description="Continuous-time sequence models on irregular series.")
    commands = main.add_subparsers(dest="command", required=True)
    fit_parser = commands.add_parser("fit", help="train a model in a run folder", description=_fit_help())
    fit_parser.add_argument("--config", type=Path, help="a YAML or JSON file of config keys; flags override it")
    fit_parser.add_argument("--out", type=Path, help="the run folder (default: runs/<model>-<time>)")
    fit_parser.add_argument(
        "--resume",
        type=Path,
        metavar="RUN_DIR",
        help="continue the run in RUN_DIR with its saved config; --epochs, --patience and --strict may change it",
    )
    for name in _FLAGS:
        _add_flag(fit_parser, name)
    fit_parser.add_argument("--inner-solver", help=_INNER_HELP)
    fit_parser.add_argument("--window", type=int, help=_WINDOW_HELP)
    fit_parser.add_argument("--nproc", type=int, help=_NPROC_HELP)
    fit_parser.add_argument("--quiet", action="store_true", help=_QUIET_HELP)
    evaluate_parser = commands.add_parser(
        "evaluate", help="re-score a run's best checkpoint, optionally under other numerics or missing rate"
    )
    evaluate_parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a finished run folder")
    for name in _EVALUATE_FLAGS:
        _add_flag(evaluate_parser, name)
    evaluate_parser.add_argument("--inner-solver", help=_INNER_HELP)
    evaluate_parser.add_argument("--window", type=int, help=_WINDOW_HELP)
    evaluate_parser.add_argument("--strict", action="store_true", default=None, help=_FLAGS["strict"][1])
    evaluate_parser.add_argument("--quiet", action="store_true", help=_QUIET_HELP)
    sweep_parser = commands.add_parser("sweep", help="a grid of runs and its summary table and plot")
    sweep_parser.add_argument(
        "--config", type=Path, required=True, help='YAML or JSON: {"base": {...}, "grid": {"model": [...], ...}}'
    )
    sweep_parser.add_argument("--out", type=Path, required=True, help="folder for the run folders and the summary")
    sweep_parser.add_argument("--quiet", action="store_true", help=_QUIET_HELP)
    stability_parser = commands.add_parser(
        "stability", help="a stability report (figures, numbers, report.md) of a run or of a config's untrained model"
    )
    stability_parser.add_argument("run_dir", nargs="?", type=Path, metavar="RUN_DIR", help="a finished run folder")
    stability_parser.add_argument("--config", type=Path, help="study the untrained model of this YAML or JSON config")
    stability_parser.add_argument("--out", type=Path, help="the report folder (default: RUN_DIR/stability)")
    stability_parser.add_argument("--samples", type=int, default=16, help="test series studied (default 16)")
    stability_parser.add_argument("--quiet", action="store_true", help=_QUIET_HELP)
    commands.add_parser("list", help="models, solvers, controllers and datasets with one-line descriptions")
    return main


def _add_flag(command: argparse.ArgumentParser, name: str) -> None:
    """The flag of config key `name` (`--test-data` for `test_data`); unset flags stay `None`."""
    kind, text = _FLAGS[name]
    flag = f"--{name.replace('_', '-')}"
    if name in _SWITCHES:
        command.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=text)
    elif kind is bool:
        command.add_argument(flag, dest=name, action="store_true", default=None, help=text)
    else:
        command.add_argument(flag, dest=name, type=kind, help=text)


_INNER_HELP = "the Runge-Kutta method inside --solver method_of_steps (delay models) or log_ode (CDE models)"
_WINDOW_HELP = "observations per step of --solver log_ode (the log-ODE method of neural CDEs on long series)"
_QUIET_HELP = "show no progress (by default a bar redrawn on a terminal, and one line per step)"
_NPROC_HELP = (
    "train data-parallel on N processes of this machine (runs torchrun; the same as "
    "`torchrun --nproc-per-node N -m neuralct fit ...`); --batch-size stays the global minibatch"
)


def _fit_help() -> str:
    """The description of `neuralct fit`, with the config's defaults."""
    from .train.config import FitConfig

    return (
        "Train a model on a dataset with observations dropped at random, writing config.json, metrics.csv, "
        "metrics.jsonl, last.pt, best.pt, result.json and PNG plots into the run folder. Defaults: "
        + ", ".join(f"{f.name}={f.default!r}" for f in fields(FitConfig) if f.name in _FLAGS)
    )


_RUN_FOLDERS = """## Run folders

**One writer.** `neuralct fit` locks its run folder with `run.lock`, a file holding the pid of the
process that writes it, created whole and atomically. A second `fit --out R` or `fit --resume R`
while the first runs stops at once with `R is in use by process <pid>`, exit code 2. The lock is
removed when the run ends, also on an error or Ctrl-C; the lock of a process that no longer runs
(a killed run) is taken over.

**Resuming.** `fit --resume R` continues from `R/last.pt` with the config saved in `R`; a run
killed at any point loses at most the epoch in progress and ends with the metrics of a run that
was never stopped. `--epochs N` extends a resumed run (or ends it sooner, not below its completed
epochs; a cosine schedule is re-stretched over the new total), and `--patience` and `--strict`
may change too; a flag that would change the model or its training (`--hidden`, `--lr`,
`--solver`, ...) is refused by name. A run killed before its first epoch was checkpointed (no
`last.pt`) starts again from epoch 0, with a note saying so, under `--resume` (its saved config)
as under `--out` (the config given).

**Several processes and machines.** Rank 0 alone writes the run folder, but every process reads
it (the checkpoint it resumes from, the best checkpoint tested at the end), so across machines
`--out` must be an absolute path on a file system that every machine mounts at the same path; a
machine that does not see it stops every process at the start with an error, leaving no folder.
`--resume R` runs on any number of processes: `--batch-size` is the global minibatch and the
shuffled order comes from the checkpoint, so a model without noise ends as if it had never been
stopped; ranks other than 0 seed their noise streams again (a checkpoint holds rank 0's).

**Your own data.** With `--data`, the file is read before the run folder is created: a file that
cannot be read stops the command with one line naming the file and the line or series at fault,
and leaves no folder. `data.json` records what the data pipeline chose (class labels in index
order, channel names, the fitted normalisation, the test series drawn when the file had no
split, each file's SHA-256); `evaluate`, `--resume` and `stability` read it back.

**Integrity.** Every checkpoint carries the SHA-256 of its contents, checked before it is read:
a flipped bit or a file cut short is an error, not a resume with other weights. The checkpoint
that `last.pt` replaces is kept as `prev.pt`, and a resume falls back on it (with a note) when
`last.pt` is damaged or missing; with neither, the run stops with an error naming the file.
Checkpoints, `config.json` and `result.json` are replaced atomically (a temporary file, flushed
to disk, renamed); each epoch's metric row is flushed to disk before its checkpoint, and on
resume the rows are recovered from both `metrics.jsonl` and `metrics.csv` (a row torn by a kill
is dropped, every intact row is kept) and both files are replaced atomically.

**Failed solves.** A sample whose solve fails (`max_steps` reached, a vanishing step size, a
non-finite state) is left out of its minibatch's loss and step, or of its split's scores, and
counted: `train_failed` and `val_failed` in the metrics, `test_failed` in `result.json` and the
`evaluate` output, and `failed: N train, M val` at the end of the epoch's line. `--strict` stops
the run at the first failed solve instead, before the optimizer takes a step with it. A
non-finite loss stops the run in either mode.

**Errors.** A bad flag or config key (with a suggestion for a misspelled one, also inside
`model_options`, `dataset_options` and `solver_options`), a key given twice in a config file, an
unknown top-level key of a sweep file, a folder that cannot be written (read-only, full disk,
`--out` naming a file): each is one line, `neuralct: error: ...`, naming the key or the path,
with exit code 2.
"""


def reference_markdown() -> str:
    """The command-line reference page (`docs/cli.md`): every command's `--help` text."""
    main_parser = parser()
    commands = next(a for a in main_parser._actions if isinstance(a, argparse._SubParsersAction))
    parts = [
        "# Command-line reference",
        "",
        "Generated from the `--help` texts (`python -m neuralct.cli --reference`); what `fit` does with",
        "its run folder (locking, resuming, checkpoint integrity, failed solves) is at the end.",
        "",
    ]
    for name, sub in [("neuralct", main_parser), *((f"neuralct {n}", p) for n, p in commands.choices.items())]:
        sub.formatter_class = functools.partial(argparse.HelpFormatter, width=100)  # not the terminal's width
        parts += [f"## `{name}`", "", "```text", sub.format_help().rstrip(), "```", ""]
    return "\n".join(parts) + "\n" + _RUN_FOLDERS


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit status (2 for a bad config or input, with its message)."""
    argv = sys.argv[1:] if argv is None else argv
    # A bare `list` skips the parser, whose `fit` description reads the config's defaults (torch).
    args = argparse.Namespace(command="list") if argv == ["list"] else parser().parse_args(argv)
    try:
        if args.command == "list":
            _list()
        elif args.command == "sweep":
            from .train.progress import ProgressBar, lines
            from .train.sweep import read_sweep, sweep

            runs = None if args.quiet else lambda config: ProgressBar(config.epochs)
            report = lines(quiet=args.quiet)
            sweep(*read_sweep(args.config), args.out, report=report, progress=runs, monitor=_jacobian_monitor())
            print((args.out / "summary.md").read_text())
        elif args.command == "stability":
            _stability(args)
        elif args.command == "evaluate":
            changes = {k: getattr(args, k) for k in (*_EVALUATE_FLAGS, "strict")}
            changes = {k: v for k, v in changes.items() if v is not None} | _inner(args)
            from .train.build import evaluate_run
            from .train.progress import PassBar

            print(json.dumps(evaluate_run(args.run_dir, on_batch=PassBar("test", quiet=args.quiet), **changes)))
        else:
            return _fit(args, argv)
        sys.stdout.flush()  # a closed pipe shows here, inside the try
    except BrokenPipeError:  # `neuralct list | head`: the reader has all it wanted
        # Python's recipe: what is still buffered goes to devnull, not to an error at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except NeuralCTError as error:
        print(f"neuralct: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a read-only folder, a full disk: the file and the reason, not a traceback
        where = f"{error.filename}: " if error.filename is not None else ""
        print(f"neuralct: error: {where}{error.strerror or error}", file=sys.stderr)
        return 2
    return 0


def _fit(args: argparse.Namespace, argv: list[str]) -> int:
    from .train.config import FitConfig
    from .train.distributed import launch, session
    from .train.progress import ProgressBar
    from .train.run import fit

    if args.nproc is not None:
        return launch(args.nproc, _without_nproc(argv))
    resume = args.resume is not None
    if resume and (args.config is not None or args.out is not None):
        raise InvalidInputError("--resume RUN_DIR runs the config saved in RUN_DIR: give neither --config nor --out")
    config, changes = (None, _flags(args)) if resume else (_config(args), {})
    saved = FitConfig.from_file(args.resume / "config.json", **changes) if resume else config
    with session(saved.device) as workers:
        out = args.resume or args.out or Path("runs") / f"{config.model}-{time.strftime('%Y%m%d-%H%M%S')}"
        out = workers.from_main(out)  # one folder, whatever each process's clock says
        say = print if workers.main else _silent
        say(f"run folder: {out}" + (f" ({workers.world} processes)" if workers.world > 1 else ""))
        progress = ProgressBar(saved.epochs, quiet=args.quiet)
        monitor = _jacobian_monitor() if saved.monitor_jacobian else None
        result = fit(config, out, resume=resume, changes=changes, progress=progress, workers=workers, monitor=monitor)
        say(json.dumps(result))
    return 0


def _jacobian_monitor() -> Monitor:
    """What `fit` records as `max_jacobian_real` for a run with `monitor_jacobian`."""
    from .stability.jacobian import jacobian_monitor  # the stability lab: loaded only for a run that needs it

    return jacobian_monitor


def _flags(args: argparse.Namespace) -> dict[str, Any]:
    """The config keys given as flags."""
    return {name: getattr(args, name) for name in _FLAGS if getattr(args, name) is not None} | _inner(args)


def _config(args: argparse.Namespace) -> FitConfig:
    """The config of `fit`: the flags over the config file's keys, if there is one. `--window` and
    `--inner-solver` add to the file's `solver_options` (for the same solver), not replace them."""
    from .train.config import FitConfig

    flags = _flags(args)
    if not args.config:
        return FitConfig.from_mapping(flags)
    saved = FitConfig.from_file(args.config)
    if "solver_options" in flags and flags.get("solver", saved.solver) == saved.solver:
        flags["solver_options"] = {**saved.solver_options, **flags["solver_options"]}
    return FitConfig.from_file(args.config, **flags)


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
    from .train.config import FitConfig
    from .train.progress import lines

    say = lines(quiet=args.quiet)

    if (args.run_dir is None) == (args.config is None):
        raise InvalidInputError("give exactly one of RUN_DIR (a finished run) and --config (an untrained model)")
    if args.config is not None:
        config = FitConfig.from_file(args.config)
        out = args.out or Path("runs") / f"stability-{config.model}-{time.strftime('%Y%m%d-%H%M%S')}"
        config_report(config, out, samples=args.samples, progress=say)
    else:
        out = args.out or args.run_dir / "stability"
        stability_report(args.run_dir, out, samples=args.samples, progress=say)
    print(f"report: {out / 'report.md'}")


def _inner(args: argparse.Namespace) -> dict[str, Any]:
    """`solver_options` for `--inner-solver` and `--window`, if given."""
    given = {"solver": args.inner_solver, "window": args.window}
    options = {key: value for key, value in given.items() if value is not None}
    return {"solver_options": options} if options else {}


def _list() -> None:
    """Every name a config may use, with its line (the registry's; nothing is imported)."""
    for kind in ("model", "solver", "controller", "dataset"):
        print(f"{kind}s:")
        for name, text in registry.names(kind).items():
            print(f"  {name:28s} {text}")


if __name__ == "__main__":
    if sys.argv[1:] == ["--reference"]:
        print(reference_markdown(), end="")
        sys.exit(0)
    sys.exit(main())

"""A stability report of a model: figures (PNG and SVG), the raw numbers (JSON) and `report.md`.

`stability_report(run_dir, out)` studies the best checkpoint of a `neuralct fit` run on a few test
series (`config_report(config, out)` does the same for an untrained model of a config):

- for a model that is one ODE over the series (LTC, neural CDE, ANCDE, ...): the Jacobian spectra
  of its vector field along its own solves (`jacobian.png`, arrays in `jacobian.npz`; the text
  quotes the stiffness ratio's median, 90th percentile and max over the same points); the stability
  regions of its solver and of a few standard ones with $h\\lambda$ at the median observation gap
  overlaid, and the largest stable step of each (`regions.png`); finite-time Lyapunov exponents of
  the trained flow driven by the series (`lyapunov.png`); and the norms of $\\partial h_T / \\partial
  h_{T-\\ell}$ against the lag, with the fitted rate (`gradients.png`);
- for a delay equation (tau-GRU): the linearisation of its delay field (`neuralct.stability.delay`)
  and the regions of the method of steps' inner methods; the Lyapunov section says why it does not
  apply (see `neuralct.stability.report_dynamics`);
- for every model: the test metric under input perturbations (`robustness.png`) and under the
  other numerics that integrate its term (a dry run decides; the others are named with why).

`numbers.json` lists the `sections` written and, per `skipped` section, the reason.

`numbers.json` is strict JSON: an infinite step (an A-stable solver) is written as `"inf"`.

Each section of `report.md` says in one line what the numbers mean, e.g. "lambda_max = 0.12 > 0:
gradients will grow about e^(0.12 T)".
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .._checks import check_int
from ..data.series import IrregularBatch
from ..errors import NeuralCTError
from ..models.base import AbstractSequenceModel, SolveOptions
from ..train import FitConfig, check_numerics, finished_run_config, load_run
from .perturbations import median_gap
from .plots import plot_robustness
from .report_dynamics import DYNAMICS, dynamics_sections
from .robustness import robustness_curve, solver_swap, standard_perturbations

# Numerics tried at inference beside the run's own: (solver, solver_options). Only those that
# integrate the model's term are kept: ODE solvers for an ODE, the method of steps around
# several inner Runge-Kutta methods for a delay equation.
_SWAPS = (
    ("rk4", {}),
    ("dopri5", {}),
    ("method_of_steps", {"solver": "heun"}),
    ("method_of_steps", {"solver": "rk4"}),
    ("method_of_steps", {"solver": "dopri5"}),
)


def stability_report(
    run_dir: Path | str,
    out: Path | str | None = None,
    *,
    samples: int = 16,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Study the best checkpoint of the run in `run_dir`; write the report into `out`
    (default `run_dir/stability`). Returns the numbers written to `numbers.json`. `progress` is
    told in one line what each section is about to study (e.g. `neuralct.train.progress.lines`).

    Raises:
        InvalidInputError: no finished run in `run_dir`, or `samples < 1`.
    """
    run_dir = Path(run_dir)
    config = finished_run_config(run_dir)
    return _report(config, Path(out or run_dir / "stability"), samples, run_dir, progress)


def config_report(
    config: FitConfig, out: Path | str, *, samples: int = 16, progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """The same study for the untrained (freshly initialised, seeded) model of `config`."""
    torch.manual_seed(config.seed)
    return _report(config, Path(out), samples, None, progress)


def _report(
    config: FitConfig, out: Path, samples: int, run_dir: Path | None, progress: Callable[[str], None] | None
) -> dict[str, Any]:
    check_int("samples", samples)
    say = progress or (lambda text: None)
    say("loading the data and the model")
    run = load_run(run_dir, config)
    splits, model = run.splits, run.model
    checkpoint = None if run_dir is None else run_dir / "best.pt"
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    count = min(samples, splits.test.batch_size)
    series = splits.test.select(torch.linspace(0, splits.test.batch_size - 1, count).round().long().unique())
    options = config.solve_options(model)
    numbers: dict[str, Any] = {"model": config.model, "dataset": config.dataset, "trained": checkpoint is not None}
    lines = [f"# Stability report: {config.model} on {config.dataset}", "", _header(config, checkpoint, series), ""]
    say(f"dynamics along {series.batch_size} test series: the sections that apply to {config.model}")
    dynamics_lines, dynamics_numbers, skipped = dynamics_sections(model, series, config.solver, options, out)
    say("robustness: the test metric under input perturbations and other solvers")
    robustness_lines, robustness_numbers = _robustness(model, splits.test, config, options, out)
    lines += dynamics_lines + robustness_lines
    memory = ["memory"] if "memory" in dynamics_numbers else []  # state-space models: their impulse responses
    sections = [name for name in DYNAMICS if name not in skipped] + memory + ["robustness", "solver_swap"]
    numbers |= dynamics_numbers | robustness_numbers | {"sections": sections, "skipped": skipped}
    (out / "numbers.json").write_text(json.dumps(_strict(numbers), indent=1, allow_nan=False) + "\n")
    (out / "report.md").write_text("\n".join(lines) + "\n")
    return numbers


def _header(config: FitConfig, checkpoint: Path | None, series: IrregularBatch) -> str:
    state = f"the best checkpoint `{checkpoint}`" if checkpoint is not None else "an untrained model (seeded)"
    numerics = "the model's own numerics" if config.solver is None else config.solver
    return (
        f"Studied: {state}, {config.hidden} hidden units, under {numerics}; {series.batch_size} test series "
        f"(median observation gap {float(median_gap(series).median()):.3g})."
    )


def _robustness(
    model: AbstractSequenceModel,
    test: IrregularBatch,
    config: FitConfig,
    options: SolveOptions | None,
    out: Path,
) -> tuple[list[str], dict[str, Any]]:
    levels = {"sigmas": (0.1, 0.3, 1.0), "fractions": (0.05, 0.2), "drops": (0.3, 0.6), "jitters": (0.25, 0.5)}
    perturbations = standard_perturbations(**levels)
    curves = robustness_curve(model, test, perturbations, options=options)
    plot_robustness(curves, out / "robustness.svg")
    candidates, left_out = _swap_numerics(model, test, config)
    swaps = solver_swap(model, test, candidates)
    metric = "accuracy" if "accuracy" in curves[0] else "mae"
    lines = ["## Robustness on the whole test split", "", "![Metric under perturbations](robustness.png)", ""]
    lines += [f"| perturbation | {metric} | evaluations / sample |", "|---|---|---|"]
    lines += [f"| {row.get('label', 'clean')} | {row[metric]:.4g} | {row['vf_evals']:.0f} |" for row in curves]
    lines += [
        "",
        "Other numerics at inference:",
        "",
        f"| numerics | {metric} | evaluations / sample |",
        "|---|---|---|",
    ]
    for row in swaps:
        value = "failed: " + row["error"].splitlines()[0] if row.get("error") else f"{row[metric]:.4g}"
        evals = "" if row.get("error") else f"{row['vf_evals']:.0f}"
        lines.append(f"| {row['label']} ({row['numerics']}) | {value} | {evals} |")
    if left_out:
        lines += ["", f"Not tried, since a dry run on two series shows they cannot integrate this model: {left_out}."]
    return lines + [""], {"robustness": curves, "solver_swap": swaps}


def _swap_numerics(
    model: AbstractSequenceModel, test: IrregularBatch, config: FitConfig
) -> tuple[dict[str, SolveOptions | None], str]:
    """The run's numerics and each of `_SWAPS` that integrates the model's term (a two-sample dry
    run, as `check_config_numerics` does: a solver that refuses the term fails before solving),
    with the left-out ones named, each with the first line of its error."""
    numerics: dict[str, SolveOptions | None] = {"trained": config.solve_options(model)}
    left_out = []
    for solver, solver_options in _SWAPS:
        label = ":".join([solver, *solver_options.values()])
        try:
            options = config.replace(solver=solver, solver_options=solver_options, controller=None, step=None)
            check_numerics(model, test, options.solve_options())
        except NeuralCTError as error:
            left_out.append(f"{label} ({type(error).__name__}: {str(error).splitlines()[0]})")
            continue
        numerics[label] = options.solve_options()
    return numerics, "; ".join(left_out)


def _strict(value: Any) -> Any:
    """`value` as strict JSON: non-finite numbers become the strings "inf", "-inf", "nan"."""
    if isinstance(value, dict):
        return {str(key): _strict(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(item) for item in value]
    if isinstance(value, torch.Tensor):
        return _strict(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)


__all__ = ["config_report", "stability_report"]

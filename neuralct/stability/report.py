"""A stability report of a model: figures (PNG and SVG), the raw numbers (JSON) and `report.md`.

`stability_report(run_dir, out)` studies the best checkpoint of a `neuralct fit` run on a few test
series (`config_report(config, out)` does the same for an untrained model of a config):

- for a model that is one equation over the series (LTC, neural CDE, ANCDE, the noisy RNN, ...):
  the Jacobian spectra of its vector field along its own solves (`jacobian.png`); the stability
  regions of its solver and of a few standard ones with $h\\lambda$ at the median observation gap
  overlaid, and the largest stable step of each (`regions.png`); finite-time Lyapunov exponents of
  the trained flow driven by the series (`lyapunov.png`); and the norms of $\\partial h_T / \\partial
  h_{T-\\ell}$ against the lag, with the fitted rate (`gradients.png`);
- for every model: the test metric under input perturbations and other solvers at inference
  (`robustness.png`).

`numbers.json` is strict JSON: an infinite step (an A-stable solver) is written as `"inf"`.

Each section of `report.md` says in one line what the numbers mean, e.g. "lambda_max = 0.12 > 0:
gradients will grow about e^(0.12 T)".
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

from ..data.series import IrregularBatch
from ..errors import InvalidInputError
from ..models.base import AbstractContinuousModel, AbstractSequenceModel, SolveOptions
from ..solvers.rk4 import RK4
from ..terms.base import AbstractDriftTerm
from ..train.build import build_model, finished_run_config, load_splits
from ..train.checkpoint import load_checkpoint
from ..train.config import FitConfig
from .gradients import gradient_horizon
from .jacobian import model_jacobian_spectra
from .lyapunov import flow_map, lyapunov_spectrum
from .perturbations import median_gap
from .plots import (
    plot_gradient_horizon,
    plot_jacobian_spectra,
    plot_lyapunov_trace,
    plot_robustness,
    plot_stability_regions,
)
from .regions import largest_stable_step, stability_function, supported_solvers
from .robustness import default_solvers, robustness_curve, solver_swap, standard_perturbations

_STANDARD_SOLVERS = ("euler", "rk4", "dopri5", "implicit_euler")


def stability_report(run_dir: Path | str, out: Path | str | None = None, *, samples: int = 16) -> dict[str, Any]:
    """Study the best checkpoint of the run in `run_dir`; write the report into `out`
    (default `run_dir/stability`). Returns the numbers written to `numbers.json`.

    Raises:
        InvalidInputError: no finished run in `run_dir`, or `samples < 1`.
    """
    run_dir = Path(run_dir)
    config = finished_run_config(run_dir)
    return _report(config, Path(out or run_dir / "stability"), samples, checkpoint=run_dir / "best.pt")


def config_report(config: FitConfig, out: Path | str, *, samples: int = 16) -> dict[str, Any]:
    """The same study for the untrained (freshly initialised, seeded) model of `config`."""
    torch.manual_seed(config.seed)
    return _report(config, Path(out), samples, checkpoint=None)


def _report(config: FitConfig, out: Path, samples: int, checkpoint: Path | None) -> dict[str, Any]:
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise InvalidInputError(f"`samples` must be a positive int; got {samples!r}")
    splits = load_splits(config)
    model = build_model(config, splits.train)
    if checkpoint is not None:
        load_checkpoint(checkpoint, model=model, restore_rng=False)
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    count = min(samples, splits.test.batch_size)
    series = splits.test.select(torch.linspace(0, splits.test.batch_size - 1, count).round().long().unique())
    options = config.solve_options()
    numbers: dict[str, Any] = {"model": config.model, "dataset": config.dataset, "trained": checkpoint is not None}
    lines = [f"# Stability report: {config.model} on {config.dataset}", "", _header(config, checkpoint, series), ""]
    for part_lines, part_numbers in (
        _dynamics(model, series, config, options, out),
        _robustness(model, splits.test, config, options, out),
    ):
        lines += part_lines
        numbers.update(part_numbers)
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


def _dynamics(
    model: AbstractSequenceModel,
    series: IrregularBatch,
    config: FitConfig,
    options: SolveOptions | None,
    out: Path,
) -> tuple[list[str], dict[str, Any]]:
    if not isinstance(model, AbstractContinuousModel) or not isinstance(model.term(series), AbstractDriftTerm):
        reason = (
            f"{type(model).__name__} is not one ODE over the series (its state jumps, or it has a delay or noise term)"
        )
        return ["## Dynamics", "", f"Skipped: {reason}; the robustness study below still applies.", ""], {}
    numbers: dict[str, Any] = {}
    lines = ["## Jacobian spectra along the model's own solves", ""]
    spectra = model_jacobian_spectra(model, series, options)
    plot_jacobian_spectra(spectra, out / "jacobian.svg")
    abscissa = float(spectra.spectral_abscissa().max())
    stiffness = float(spectra.stiffness.nan_to_num(nan=1.0).max())
    fastest = float(spectra.eigenvalues.abs().max())
    numbers["jacobian"] = {"spectral_abscissa": abscissa, "max_stiffness": stiffness, "max_abs_eigenvalue": fastest}
    growth = "locally expanding somewhere" if abscissa > 0 else "contracting everywhere visited"
    lines += [
        "![Jacobian spectra](jacobian.png)",
        "",
        f"Largest real part {abscissa:.3g} ({growth}); largest |lambda| {fastest:.3g}; "
        f"stiffness ratio up to {stiffness:.3g}.",
        "",
    ]
    region_lines, numbers["regions"] = _regions(spectra.eigenvalues, float(median_gap(series).median()), config, out)
    lyapunov_lines, numbers["lyapunov"] = _lyapunov(model, series, out)
    return lines + region_lines + lyapunov_lines, numbers


def _regions(eigenvalues: torch.Tensor, gap: float, config: FitConfig, out: Path) -> tuple[list[str], dict[str, Any]]:
    solvers = list(_STANDARD_SOLVERS)
    if config.solver in supported_solvers() and config.solver not in solvers:
        solvers.insert(0, config.solver)
    points = eigenvalues.detach().cpu().numpy().ravel()
    plot_stability_regions(solvers, points, dt=gap, path=out / "regions.svg")
    steps = {name: largest_stable_step(name, points) for name in solvers}
    lines = ["## Solver stability regions", "", "![Stability regions with h*lambda at the median gap](regions.png)", ""]
    lines.append(f"Eigenvalues times the median observation gap h = {gap:.3g}. Largest stable step per solver:")
    lines += [""] + [f"- {stability_function(name).name}: {_step_text(step, gap)}" for name, step in steps.items()]
    return lines + [""], {"median_gap": gap, "largest_stable_step": steps}


def _step_text(step: float, gap: float) -> str:
    if math.isinf(step):
        return "any step (A-stable on these eigenvalues)"
    if step >= gap:
        return f"{step:.3g} (stable at one step per gap)"
    if step == 0:
        return "0 (no step is stable: some eigenvalue lies on or right of the imaginary axis)"
    return f"{step:.3g} (unstable at one step per gap; needs at least {math.ceil(gap / step)} steps per gap)"


def _lyapunov(model: AbstractContinuousModel, series: IrregularBatch, out: Path) -> tuple[list[str], dict[str, Any]]:
    with torch.no_grad():
        term, start = model.term(series), model.initial_state(series)
    times = model.save_times(series)
    t0, t1 = float(times[:, 0].max()), float(series.times.gather(1, (series.lengths - 1)[:, None]).min())
    dt = max((t1 - t0) / 200, 1e-6)
    steps = max(int((t1 - t0) / dt), 2)
    step = flow_map(term, RK4(), dt, t0=t0)
    k = min(3, start.shape[1])
    spectrum = lyapunov_spectrum(step, start.flatten(1), steps, k=k, dt=dt, record_every=max(steps // 50, 1))
    plot_lyapunov_trace(spectrum, out / "lyapunov.svg")
    horizon = gradient_horizon(step, start.flatten(1), steps, dt=dt)
    leading = float(spectrum.mean()[0])
    plot_gradient_horizon(horizon, out / "gradients.svg", lyapunov=leading)
    span = steps * dt
    growth = math.exp(max(min(leading * span, 700), -700))
    if leading > 0:
        reading = f"lambda_max = {leading:.3g} > 0: gradients will grow about e^({leading:.3g} T)"
    else:
        reading = f"lambda_max = {leading:.3g} <= 0: the flow contracts; gradients shrink about e^({leading:.3g} T)"
    reading += f", x{growth:.3g} over the series"
    lines = [
        "## Finite-time Lyapunov exponents and gradients against the horizon",
        "",
        "![Lyapunov exponents](lyapunov.png) ![Gradient norms against the lag](gradients.png)",
        "",
        f"Over the series (T = {span:.3g}, RK4 at dt = {dt:.3g}), the {k} leading exponents are "
        f"{', '.join(f'{v:.3g}' for v in spectrum.mean().tolist())}. {reading}. The fitted growth rate of "
        f"||dh_T/dh_(T-l)|| is {horizon.mean_rate():.3g} ({horizon.diagnosis()}).",
        "",
    ]
    return lines, {"exponents": spectrum.mean().tolist(), "horizon": span, "gradient_rate": horizon.mean_rate()}


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
    swaps = solver_swap(model, test, default_solvers(config))
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
    return lines + [""], {"robustness": curves, "solver_swap": swaps}


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

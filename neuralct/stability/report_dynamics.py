"""The dynamics sections of a stability report (see `neuralct.stability.report`), chosen by the
model's term: an ODE over the series gets its Jacobian spectra, solver regions, Lyapunov exponents
and gradients against the lag; a delay equation gets the linearisation of its delay field and the
regions of the method of steps' inner methods; a state-space model (`SSMModel`) the impulse
responses and memory profiles of its layers; any other model a one-sentence reason per section.

Each section returns its `report.md` lines, its numbers, and the figures' arrays (saved beside the
report as `<figure>.npz`, so every number in the text can be recomputed from them).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.series import IrregularBatch
from ..models.base import AbstractContinuousModel, AbstractSequenceModel, SolveOptions
from ..models.ssm import SSMModel
from ..solvers.rk import RK4
from ..terms.base import AbstractDriftTerm
from ..terms.delay import DelayTerm
from .delay import model_delay_linearisation
from .gradients import gradient_horizon
from .jacobian import JacobianSpectra, model_jacobian_spectra
from .lyapunov import flow_map, lyapunov_spectrum
from .memory import memory_profile
from .perturbations import median_gap
from .plots import (
    plot_gradient_horizon,
    plot_jacobian_spectra,
    plot_lyapunov_trace,
    plot_memory_profiles,
    plot_stability_regions,
    stiffness_statistics,
)
from .regions import largest_stable_step, stability_function, supported_solvers

Section = tuple[list[str], dict[str, Any]]
# Solvers whose regions are drawn: for an ODE, standard ones; for a delay equation, the explicit
# Runge-Kutta methods that the method of steps can carry (an implicit one it cannot).
_ODE_SOLVERS = ("euler", "rk4", "dopri5", "implicit_euler")
_INNER_SOLVERS = ("euler", "heun", "rk4", "dopri5")
DYNAMICS = ("jacobian", "regions", "lyapunov")


def dynamics_sections(
    model: AbstractSequenceModel, series: IrregularBatch, solver: str | None, options: SolveOptions | None, out: Path
) -> tuple[list[str], dict[str, Any], dict[str, str]]:
    """The dynamics sections that apply to `model`: lines, numbers, and a reason per skipped section."""
    if isinstance(model, SSMModel):
        reason = (
            f"{type(model).__name__} ({model.layer}) is a stack of linear state-space layers discretised in closed "
            "form at each gap: no vector field is solved; its memory is read off the layers' impulse responses above"
        )
        lines, numbers = _ssm_memory(model, series, out)
        skipped = _skipped("Jacobian spectra, solver regions and Lyapunov exponents", reason)
        return lines + skipped, numbers, dict.fromkeys(DYNAMICS, reason)
    term = model.term(series) if isinstance(model, AbstractContinuousModel) else None
    gap = float(median_gap(series).median())
    if isinstance(term, DelayTerm):
        lines, numbers = _delay_field(model, series, options, out)
        region_lines, numbers["regions"] = _regions(numbers.pop("eigenvalues"), gap, _INNER_SOLVERS, out, inner=True)
        reason = (
            "the state of a delay equation is its whole history over the last max(tau) time units, not h(t), so "
            "there is no flow map on h alone whose exponents or step Jacobians could be taken"
        )
        return (
            lines + region_lines + _skipped("Lyapunov exponents and gradients against the lag", reason),
            numbers,
            {"lyapunov": reason},
        )
    if isinstance(term, AbstractDriftTerm):
        lines, numbers = _jacobian(model, series, options, out)
        solvers = ((solver,) if solver in supported_solvers() and solver not in _ODE_SOLVERS else ()) + _ODE_SOLVERS
        region_lines, numbers["regions"] = _regions(numbers.pop("eigenvalues"), gap, solvers, out, inner=False)
        lyapunov_lines, numbers["lyapunov"] = _lyapunov(model, series, out)
        return lines + region_lines + lyapunov_lines, numbers, {}
    if term is None:
        reason = f"{type(model).__name__} jumps at every observation, so no single vector field over the series exists"
    else:
        reason = f"its {type(term).__name__} has no single deterministic vector field (noise drives it)"
    return (
        _skipped("Dynamics", f"{reason}; the robustness study below still applies"),
        {},
        dict.fromkeys(DYNAMICS, reason),
    )


def _ssm_memory(model: SSMModel, series: IrregularBatch, out: Path) -> Section:
    """Impulse responses of each block's layer at one time unit per lag (`memory.png`, kernels in `memory.npz`)."""
    length = min(max(16 * series.max_length, 1024), 8192)  # long enough to see slow modes fade
    profiles = {f"block {i} ({model.layer})": memory_profile(layer, length) for i, layer in enumerate(model.layers())}
    plot_memory_profiles(profiles, out / "memory.svg")
    np.savez(out / "memory.npz", **{f"block_{i}": p.kernel.cpu().numpy() for i, p in enumerate(profiles.values())})
    rows = [
        {
            "layer": label,
            "memory_length_median": float(profile.memory_length(0.99).double().median()),
            "decay_rate_median": float(profile.decay_rate().median()),
        }
        for label, profile in profiles.items()
    ]
    gap = float(median_gap(series).median())
    lines = ["## Memory of the state-space layers", "", "![Impulse responses and their energy](memory.png)", ""]
    lines.append(
        f"Impulse responses over {length} lags of one time unit each (the median observation gap is {gap:.3g}); "
        "per layer, the median over channels of the lags holding 99% of the kernel's energy, and of the "
        "envelope's exponential decay per lag (a memory near the window's length outlasts it):"
    )
    lines += [""] + [
        f"- {row['layer']}: 99% within {row['memory_length_median']:.0f} lags, "
        f"decay {row['decay_rate_median']:.3g} per lag"
        for row in rows
    ]
    return lines + [""], {"memory": {"lags": length, "median_gap": gap, "layers": rows}}


def _skipped(title: str, reason: str) -> list[str]:
    return [f"## {title}", "", f"Skipped: {reason}.", ""]


def _jacobian(model: Any, series: IrregularBatch, options: SolveOptions | None, out: Path) -> Section:
    spectra = model_jacobian_spectra(model, series, options)
    numbers = _spectra_numbers(spectra, out, halanay=None)
    abscissa = numbers["jacobian"]["spectral_abscissa"]
    growth = "locally expanding somewhere" if abscissa > 0 else "contracting everywhere visited"
    lines = ["## Jacobian spectra along the model's own solves", "", "![Jacobian spectra](jacobian.png)", ""]
    lines += [f"Largest real part {abscissa:.3g} ({growth}); {_spectrum_text(numbers['jacobian'])}", ""]
    return lines, {**numbers, "eigenvalues": spectra.eigenvalues}


def _delay_field(model: Any, series: IrregularBatch, options: SolveOptions | None, out: Path) -> Section:
    linear = model_delay_linearisation(model, series, options)
    halanay = linear.halanay().detach().cpu().numpy()
    numbers = _spectra_numbers(linear.instantaneous, out, halanay=halanay)
    jacobian = numbers["jacobian"]
    jacobian["max_delayed_norm"] = float(linear.delayed_norms.max())
    jacobian["halanay_max"] = float(halanay.max())
    contracting = float((halanay < 0).mean())
    lines = ["## Linearisation of the delay field along the model's own solves", ""]
    lines += ["![Spectra of the instantaneous Jacobian](jacobian.png)", ""]
    lines += [
        "Perturbations follow d(delta)/dt = A delta(t) + sum_i B_i delta(t - tau_i); the figure shows the "
        f"eigenvalues of A = df/dh(t). Largest real part {jacobian['spectral_abscissa']:.3g}; "
        f"{_spectrum_text(jacobian)} Largest ||B_i|| {jacobian['max_delayed_norm']:.3g}; Halanay's bound "
        f"mu(A) + sum_i ||B_i|| is negative (contraction whatever the delays) at {contracting:.0%} of the "
        f"points, largest {jacobian['halanay_max']:.3g}.",
        "",
    ]
    return lines, {**numbers, "eigenvalues": linear.instantaneous.eigenvalues}


def _spectra_numbers(spectra: JacobianSpectra, out: Path, halanay: np.ndarray | None) -> dict[str, Any]:
    """Plot the spectra, save their arrays to `jacobian.npz`, and the statistics the text quotes."""
    plot_jacobian_spectra(spectra, out / "jacobian.svg")
    stiffness = spectra.stiffness.detach().double().cpu().numpy()
    arrays = {
        "times": spectra.times.detach().double().cpu().numpy(),
        "eigenvalues": spectra.eigenvalues.detach().cpu().numpy(),
        "stiffness": stiffness,
    }
    np.savez(out / "jacobian.npz", **arrays, **({} if halanay is None else {"halanay": halanay}))
    statistics = {f"stiffness_{key}": value for key, value in stiffness_statistics(stiffness).items()}
    statistics["spectral_abscissa"] = float(spectra.spectral_abscissa().max())
    statistics["max_abs_eigenvalue"] = float(spectra.eigenvalues.abs().max())
    return {"jacobian": statistics}


def _spectrum_text(jacobian: dict[str, Any]) -> str:
    text = f"largest |lambda| {jacobian['max_abs_eigenvalue']:.3g}."
    count = int(jacobian["stiffness_points"])
    if not count:
        return text + " No point has a decaying eigenvalue, so no stiffness ratio is defined."
    return text + (
        f" Stiffness ratio over the {count} points with a decaying eigenvalue: median "
        f"{jacobian['stiffness_median']:.3g}, 90th percentile {jacobian['stiffness_p90']:.3g} "
        f"(max over the {count} points {jacobian['stiffness_max']:.3g})."
    )


def _regions(
    eigenvalues: torch.Tensor, gap: float, solvers: tuple[str, ...], out: Path, *, inner: bool
) -> tuple[list[str], dict[str, Any]]:
    points = eigenvalues.detach().cpu().numpy().ravel()
    plot_stability_regions(list(solvers), points, dt=gap, path=out / "regions.svg")
    steps = {name: largest_stable_step(name, points) for name in solvers}
    lines = ["## Solver stability regions", "", "![Stability regions with h*lambda at the median gap](regions.png)", ""]
    if inner:
        lines += [
            "The method of steps advances h(t) with an inner explicit Runge-Kutta method, the delayed values "
            "entering each step as known inputs: its step is stable when h*lambda(A) lies in the inner "
            "method's region (necessary; the delayed part adds the bound above).",
            "",
        ]
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


def _lyapunov(model: AbstractContinuousModel, series: IrregularBatch, out: Path) -> Section:
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


__all__ = ["DYNAMICS", "dynamics_sections"]

"""Stiffness of a liquid time-constant network, and which solvers survive it.

An LTC neuron relaxes at the rate $(g_{leak} + \\sum_j w_j \\sigma_j) / c_m$: the larger the synaptic
conductances against the membrane capacitance, the faster (and stiffer) the dynamics. This study
takes one LTC on irregular spirals and multiplies its conductances (`w`, `sensory_w`, `gleak`) by a
factor s = 1, 10, 100, 1000, then integrates the same batch with

- the fused semi-implicit LTC step (one step per observation gap, 6 unfolds), the model's own;
- implicit Euler with an adaptive step (PID, rtol 1e-3);
- Dopri5 with an adaptive step (PID, rtol 1e-3, at most 4096 steps per sample);
- RK4 and Euler with one step per observation gap,

and reports the evaluations per sample, the samples whose solve failed or blew up, and the
Jacobian spectrum along the fused solve (the largest |lambda|, and the largest stable step of
each explicit method against the median gap), with the stability-region plot at the stiffest
factor. It also checks the knob one might try first: scaling the inputs does not make an LTC
stiff, because its synapses saturate.

    python examples/stiffness_ltc.py            # 64 series, hidden 32 (about a minute on 2 cores)
    python examples/stiffness_ltc.py --small    # CI-sized: seconds
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
from pathlib import Path
from typing import NamedTuple

import matplotlib
import numpy as np
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import neuralct as nct
from neuralct import registry
from neuralct.data import IrregularBatch
from neuralct.data.datasets import load
from neuralct.models.base import SolveOptions
from neuralct.stability.jacobian import model_jacobian_spectra
from neuralct.stability.perturbations import median_gap
from neuralct.stability.plots import plot_stability_regions
from neuralct.stability.regions import largest_stable_step

FACTORS = (1.0, 10.0, 100.0, 1000.0)
CONDUCTANCES = ("w", "sensory_w", "gleak")


class Config(NamedTuple):
    series: int = 64
    length: int = 24
    hidden: int = 32
    seed: int = 0


SMALL = Config(series=8, length=10, hidden=8)


def numerics() -> dict[str, SolveOptions]:
    """The solvers compared, by label."""
    pid = nct.PIDController(rtol=1e-3, atol=1e-6)
    return {
        "LTC fused": SolveOptions(nct.LTCFused(unfolds=6), nct.KnotToKnot()),
        "implicit Euler (adaptive)": SolveOptions(nct.ImplicitEuler(), pid, throw=False),
        "Dopri5 (adaptive)": SolveOptions(nct.Dopri5(), pid, throw=False),
        "RK4 per gap": SolveOptions(nct.RK4(), nct.KnotToKnot(), throw=False),
        "Euler per gap": SolveOptions(nct.Euler(), nct.KnotToKnot(), throw=False),
    }


def stiffened(model: torch.nn.Module, factor: float) -> torch.nn.Module:
    """A copy of the LTC with its conductances multiplied by `factor`."""
    stiff = copy.deepcopy(model)
    with torch.no_grad():
        for name in CONDUCTANCES:
            getattr(stiff.field, name).mul_(factor)
    return stiff


def solve_cost(model: torch.nn.Module, batch: IrregularBatch, options: SolveOptions) -> dict:
    """Evaluations per sample, failed or blown-up samples, and the largest state magnitude."""
    with torch.no_grad():
        solution = model.solution(batch, options)
    finite = torch.isfinite(solution.ys).flatten(1).all(dim=1)
    blown = (~finite) | (solution.ys.nan_to_num(nan=math.inf).abs().flatten(1).amax(dim=1) > 1e3)
    return {
        "vf_evals": float(solution.stats.vf_evals.double().mean()),
        "failed": int((~solution.succeeded).sum()),
        "blown_up": int(blown.sum()),
        "max_state": float(solution.ys[finite].abs().max()) if bool(finite.any()) else math.inf,
    }


def spectrum(model: torch.nn.Module, batch: IrregularBatch) -> dict:
    """The Jacobian along the fused solve: largest |lambda| and the largest stable explicit steps."""
    spectra = model_jacobian_spectra(model, batch)
    points = spectra.eigenvalues.numpy().ravel()
    steps = {name: largest_stable_step(name, points) for name in ("euler", "rk4", "dopri5")}
    return {"max_abs_eigenvalue": float(spectra.eigenvalues.abs().max()), "largest_stable_step": steps}, points


def regions_figure(mild: np.ndarray, gap: float, stiff: np.ndarray, stable: float, path: Path) -> None:
    """Two panels: the conductance factor 1 at the median gap (already outside the explicit
    regions), and the factor 1000 at the largest step RK4 tolerates (inside them)."""
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    solvers = ["euler", "rk4", "dopri5"]
    plot_stability_regions(solvers, _sample(mild), dt=gap, ax=axes[0])
    axes[0].set_title(f"factor {FACTORS[0]:g}, h = median gap {gap:.2g}")
    plot_stability_regions(solvers, _sample(stiff), dt=stable, ax=axes[1])
    axes[1].set_title(f"factor {FACTORS[-1]:g}, h = {stable:.2g} (RK4's largest stable step)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _sample(points: np.ndarray, count: int = 2000) -> np.ndarray:
    """At most `count` of the eigenvalues (a fixed spread), to keep the figure light."""
    return points[np.linspace(0, points.size - 1, min(count, points.size)).astype(int)]


def main(config: Config, out: Path) -> dict:
    torch.manual_seed(config.seed)
    batch = load("spirals", "test", size=config.series, length=config.length)
    base = registry.model("ltc", channels=batch.channels, hidden=config.hidden, outputs=2)
    gap = float(median_gap(batch).median())
    results: dict = {"median_gap": gap, "factors": {}, "input_scale": {}}
    out.mkdir(parents=True, exist_ok=True)
    points = {}
    for factor in FACTORS:
        model = stiffened(base, factor)
        numbers, points[factor] = spectrum(model, batch)
        numbers["solvers"] = {label: solve_cost(model, batch, options) for label, options in numerics().items()}
        results["factors"][factor] = numbers
    stiffest = results["factors"][FACTORS[-1]]["largest_stable_step"]["rk4"]
    regions_figure(points[FACTORS[0]], gap, points[FACTORS[-1]], stiffest, out / "regions.png")
    for scale in FACTORS:  # the tempting knob: larger inputs saturate the synapses instead
        scaled = dataclasses.replace(batch, values=batch.values * scale)
        results["input_scale"][scale] = spectrum(base, scaled)[0]["max_abs_eigenvalue"]
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    return results


def table(results: dict) -> str:
    """The results as a Markdown table: one row per conductance factor and solver."""
    lines = ["| factor | max abs lambda | solver | evals / sample | failed | blown up |", "|---|---|---|---|---|---|"]
    for factor, numbers in results["factors"].items():
        for label, cost in numbers["solvers"].items():
            lines.append(
                f"| {factor:g} | {numbers['max_abs_eigenvalue']:.3g} | {label} | {cost['vf_evals']:.0f} | "
                f"{cost['failed']} | {cost['blown_up']} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="CI-sized run")
    parser.add_argument("--out", type=Path, default=Path("runs/stiffness_ltc"))
    arguments = parser.parse_args()
    found = main(SMALL if arguments.small else Config(), arguments.out)
    print(table(found))
    print("largest |lambda| against the input scale:", found["input_scale"])

"""The stability lab: instruments that measure how models and solvers behave. Computation lives
in `lyapunov` (Lyapunov spectra of maps and flows, per-sample step Jacobians) and `regions` (linear
stability regions of the solvers); figures in `plots`."""

from .lyapunov import LyapunovSpectrum, flow_map, lyapunov_spectrum, step_jacobian
from .plots import plot_lyapunov_trace, plot_stability_regions
from .regions import (
    StabilityFunction,
    inside_region,
    largest_stable_step,
    real_interval,
    region_grid,
    scaled_eigenvalues,
    stability_function,
    supported_solvers,
)

__all__ = [
    "LyapunovSpectrum",
    "StabilityFunction",
    "flow_map",
    "inside_region",
    "largest_stable_step",
    "lyapunov_spectrum",
    "plot_lyapunov_trace",
    "plot_stability_regions",
    "real_interval",
    "region_grid",
    "scaled_eigenvalues",
    "stability_function",
    "step_jacobian",
    "supported_solvers",
]

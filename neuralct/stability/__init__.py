"""The stability lab: instruments that measure how models and solvers behave. Computation lives
in `lyapunov` (Lyapunov spectra of maps and flows, per-sample step Jacobians), `jacobian` (Jacobian
spectra of a term along trajectories), `gradients` (gradient norms against the horizon), `memory`
(impulse responses of linear SSM layers), `regions` (linear stability regions of the solvers),
`perturbations` and `robustness` (a trained model under perturbed inputs and swapped numerics);
figures in `plots`."""

from .gradients import GradientHorizon, gradient_horizon
from .jacobian import JacobianSpectra, jacobian_monitor, jacobian_spectra, model_jacobian_spectra
from .memory import MemoryProfile, memory_profile
from .lyapunov import LyapunovSpectrum, flow_map, lyapunov_spectrum, step_jacobian
from .perturbations import DropObservations, GaussianNoise, SaltAndPepper, TimeJitter
from .plots import (
    plot_gradient_horizon,
    plot_jacobian_spectra,
    plot_lyapunov_trace,
    plot_memory_profiles,
    plot_robustness,
    plot_stability_regions,
)
from .robustness import robustness_curve, run_robustness, solver_swap
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
    "DropObservations",
    "GaussianNoise",
    "SaltAndPepper",
    "TimeJitter",
    "model_jacobian_spectra",
    "plot_robustness",
    "plot_gradient_horizon",
    "plot_jacobian_spectra",
    "plot_memory_profiles",
    "robustness_curve",
    "run_robustness",
    "solver_swap",
    "GradientHorizon",
    "JacobianSpectra",
    "LyapunovSpectrum",
    "MemoryProfile",
    "StabilityFunction",
    "flow_map",
    "gradient_horizon",
    "inside_region",
    "jacobian_monitor",
    "jacobian_spectra",
    "largest_stable_step",
    "lyapunov_spectrum",
    "memory_profile",
    "plot_lyapunov_trace",
    "plot_stability_regions",
    "real_interval",
    "region_grid",
    "scaled_eigenvalues",
    "stability_function",
    "step_jacobian",
    "supported_solvers",
]

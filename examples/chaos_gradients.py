"""Chaos and gradients: on Lorenz-63, BPTT gradients grow with the horizon at the Lyapunov rate, and
sparsely forced BPTT trains a PLRNN where plain BPTT does not (Mikhaeil, Monfared & Durstewitz, NeurIPS 2022).

The study, in four parts:

1. Lorenz-63's leading Lyapunov exponent through the RK4 one-step map at dt = 0.01 (about 0.906).
2. The norm of $\\partial z_T / \\partial z_{T-\\ell}$ for that map against the lag $\\ell$: its fitted
   exponential rate against the exponent of part 1.
3. A PLRNN trained on standardised Lorenz-63 windows much longer than the predictability time
   (ln 2 / 0.906 = 0.77 time units = 77 steps) with plain BPTT, plain BPTT with gradient clipping, and
   sparsely forced BPTT (interval annealed from 1 to tau); same initial parameters, same windows, same
   number of optimiser steps. Each is scored on held-out trajectories: n-step-ahead errors from
   data-inferred states, the free-running loss, the leading Lyapunov exponent of the trained model and
   a state-space divergence of its free run against the data.
4. The parameter-gradient norm of the plain (free-running) and the forced loss of the trained forced
   model against the sequence length.

Run `python examples/chaos_gradients.py [--size small|full] [--seeds 0 1 2] [--out DIR]`; the figures
`chaos_gradient_horizon.png`, `chaos_training.png`, `chaos_prediction.png` and `summary.json` are
written to `--out` (default `runs/chaos_gradients/`). "small" is the CI size (about 15 s on one
thread, one seed); "full" is the one reported in docs/studies/chaos.md (three training seeds, about
5 minutes on one thread; `--seeds 0` takes under 2). The figures show the first seed.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
from pathlib import Path
from typing import NamedTuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from chaos.forcing import (  # noqa: E402
    TrainingHistory,
    forced_rollout,
    prediction_error,
    random_windows,
    train_forced,
)
from chaos.lorenz import lorenz63, lorenz63_field  # noqa: E402
from chaos.plrnn import PLRNN  # noqa: E402

import neuralct as nct  # noqa: E402
from neuralct.stability import flow_map, gradient_horizon, lyapunov_spectrum, plot_gradient_horizon  # noqa: E402
from neuralct.stability.gradients import GradientHorizon  # noqa: E402

DT = 0.01
F64 = torch.float64


class Config(NamedTuple):
    """The sizes of the study (steps are of dt = 0.01; see `SIZES`)."""

    lyapunov_trajectories: int = 32
    lyapunov_steps: int = 5000  # 50 time units
    horizon: int = 800  # steps backpropagated through the Lorenz map: 8 time units
    horizon_trajectories: int = 64
    train_trajectories: int = 16
    train_steps: int = 4000
    test_trajectories: int = 4
    test_steps: int = 3000
    latent: int = 20
    seq_len: int = 300  # 3 time units, about 4 predictability times
    tau: int = 30  # the reference's n_interleave; below ln 2 / 0.906 = 77 steps
    clip_norm: float = 1.0  # for the clipped plain-BPTT arm
    epochs: int = 2000  # optimiser steps per arm
    batch: int = 16
    lr: float = 3e-3
    model_lyapunov_steps: int = 5000
    free_run: int = 5000  # free-running steps for the state-space divergence
    lengths: tuple[int, ...] = (25, 50, 100, 200, 400, 800)
    seed: int = 0  # of the data, the Lyapunov starts and the evaluation windows
    seeds: tuple[int, ...] = (0, 1, 2)  # training seeds: initial parameters and windows, the same for every arm


SIZES = {
    "full": Config(),
    "small": Config(
        lyapunov_trajectories=16,
        lyapunov_steps=2000,
        horizon=500,
        train_trajectories=8,
        train_steps=2000,
        test_trajectories=2,
        test_steps=1000,
        seq_len=200,
        epochs=250,
        batch=8,
        model_lyapunov_steps=1000,
        free_run=1500,
        lengths=(25, 50, 100, 200, 400),
        seeds=(0,),
    ),
}
ARMS = ("bptt", "bptt_clipped", "sparse_forcing")
LABELS = {"bptt": "plain BPTT", "bptt_clipped": "plain BPTT + clipping", "sparse_forcing": "sparsely forced BPTT"}


def lorenz_exponent(config: Config) -> float:
    """Lorenz-63's leading Lyapunov exponent (per unit time) through the RK4 map at `DT`."""
    generator = torch.Generator().manual_seed(config.seed)
    start = _lorenz_starts(config.lyapunov_trajectories, generator)
    step = flow_map(nct.ODETerm(lorenz63_field()), nct.RK4(), DT)
    spectrum = lyapunov_spectrum(step, start, config.lyapunov_steps, k=1, burn_in=300, dt=DT, generator=generator)
    return float(spectrum.mean()[0])


def lorenz_horizon(config: Config) -> GradientHorizon:
    """$\\|\\partial z_T / \\partial z_{T-\\ell}\\|$ of the Lorenz RK4 map for every lag, on the attractor."""
    start = _lorenz_starts(config.horizon_trajectories, torch.Generator().manual_seed(config.seed + 1))
    step = flow_map(nct.ODETerm(lorenz63_field()), nct.RK4(), DT)
    return gradient_horizon(step, start, config.horizon, dt=DT, burn_in=300)


def _lorenz_starts(count: int, generator: torch.Generator) -> torch.Tensor:
    return torch.tensor([0.0, 0.0, 25.0], dtype=F64) + 5 * torch.randn(count, 3, generator=generator, dtype=F64)


def train_arm(arm: str, config: Config, train: torch.Tensor, seed: int) -> tuple[PLRNN, TrainingHistory]:
    """One PLRNN trained by `arm`; every arm of one `seed` starts from the same parameters and
    sees the same windows."""
    model = PLRNN(config.latent, 3, generator=torch.Generator().manual_seed(seed))
    tau = config.tau if arm == "sparse_forcing" else None
    clip = config.clip_norm if arm == "bptt_clipped" else None
    history = train_forced(
        model,
        train,
        tau=tau,
        epochs=config.epochs,
        lr=config.lr,
        batch=config.batch,
        seq_len=config.seq_len,
        clip_norm=clip,
        seed=seed,
    )
    return model, history


def evaluate(model: PLRNN, history: TrainingHistory, test: torch.Tensor, config: Config) -> dict:
    """The numbers of one arm: training records, held-out errors, exponent and state-space divergence."""
    errors = prediction_error(model, test, 50)
    windows = random_windows(test, 32, config.seq_len, torch.Generator().manual_seed(config.seed + 2))
    with torch.no_grad():
        free_loss = float(forced_rollout(model, windows, None).loss)
    norms = np.array(history.grad_norms)
    tail = max(1, len(history.losses) // 10)
    free = free_run(model, test, config.free_run)
    return {
        "train_loss_end": float(np.mean(history.losses[-tail:])),
        "grad_norm_median": float(np.median(norms)),
        "grad_norm_max": float(np.max(norms)),
        "skipped_updates": len(history.skipped),
        "mse_1_step": float(errors[0]),
        "mse_20_steps": float(errors[19]),
        "mse_50_steps": float(errors[49]),
        "free_running_loss": _finite_or_none(free_loss),
        "lyapunov_max": model_exponent(model, test, config),
        "state_space_divergence": state_space_divergence(free[:, 500:], test) if free is not None else None,
    }


def free_run(model: PLRNN, test: torch.Tensor, steps: int) -> torch.Tensor | None:
    """`[B, steps + 1, 3]` the model's observations running freely from each test trajectory's first
    inferred state, or `None` when the run leaves the floating range."""
    with torch.no_grad():
        run = model(model.infer_state(test[:, 0]), steps)
    return run if bool(torch.isfinite(run).all()) and float(run.abs().max()) < 1e6 else None


def model_exponent(model: PLRNN, test: torch.Tensor, config: Config) -> float | None:
    """The trained PLRNN's leading Lyapunov exponent per unit time (its step is `DT`), mean over
    trajectories started at inferred test states; `None` when the free run diverges."""
    double = copy.deepcopy(model).double()
    starts = double.infer_state(test[:, :: max(1, test.shape[1] // 4)].reshape(-1, 3).double())
    try:
        generator = torch.Generator().manual_seed(config.seed)
        spectrum = lyapunov_spectrum(
            double.step, starts, config.model_lyapunov_steps, k=1, burn_in=500, dt=DT, generator=generator
        )
    except nct.NeuralCTError:
        return None
    value = float(spectrum.mean()[0])
    return value if math.isfinite(value) else None


def state_space_divergence(generated: torch.Tensor, data: torch.Tensor, bins: int = 16, limit: float = 3.0) -> float:
    """$D_{stsp}$ by binning: $\\mathrm{KL}(p_{data} \\| p_{model})$ of the occupancy of `bins`$^3$
    cells of $[-$`limit`$, $`limit`$]^3$ (standardised units), summed over the cells the data visits,
    with the model's occupancy smoothed by adding one pseudo-count to every cell (our choice; the
    paper bins the same way). 0 for the same occupancy; a collapsed model scores high."""
    edges = [torch.linspace(-limit, limit, bins + 1, dtype=F64)] * 3
    p = torch.histogramdd(data.reshape(-1, 3).double().clamp(-limit, limit), bins=edges).hist.flatten()
    q = torch.histogramdd(generated.reshape(-1, 3).double().clamp(-limit, limit), bins=edges).hist.flatten()
    p, q = p / p.sum(), (q + 1) / (q + 1).sum()
    visited = p > 0
    return float((p[visited] * (p[visited] / q[visited]).log()).sum())


def divergence_floor(test: torch.Tensor, config: Config) -> float:
    """The state-space divergence of an independent Lorenz-63 sample (as long as a model's free
    run) against `test`: what a perfect model would score with this binning and these lengths."""
    other = lorenz63(config.free_run + 1, DT, batch=test.shape[0], seed=config.seed + 200)
    return state_space_divergence(other[:, 500:], test)


def gradient_vs_length(model: PLRNN, test: torch.Tensor, config: Config) -> dict[str, list[float] | float]:
    """Global parameter-gradient norms of the free-running (plain BPTT) and the forced loss of
    `model` on 64 held-out windows of each length in `config.lengths` (the same windows for both),
    and the growth rate per unit time of the plain one (least-squares slope of its log against T)."""
    norms: dict[str, list[float]] = {"bptt": [], "sparse_forcing": []}
    generator = torch.Generator().manual_seed(config.seed + 3)
    for length in config.lengths:
        windows = random_windows(test, 64, min(length, test.shape[1]), generator)
        for arm, tau in (("bptt", None), ("sparse_forcing", config.tau)):
            model.zero_grad()
            forced_rollout(model, windows, tau).loss.backward()
            grads = [p.grad.flatten() for p in model.parameters() if p.grad is not None]
            norms[arm].append(float(torch.cat(grads).norm()))
    model.zero_grad()
    times = np.array(config.lengths) * DT
    rate = float(np.polyfit(times, np.log(norms["bptt"]), 1)[0]) if np.isfinite(norms["bptt"]).all() else None
    return {**norms, "bptt_rate": rate}


def plot_horizon(horizon: GradientHorizon, exponent: float, lengths: dict[str, dict], config: Config, out: Path):
    """Two panels: the Lorenz map's backpropagated norms against the lag (fitted rate and
    $\\lambda_{max}$), and each seed's sparsely forced model's parameter gradients against the
    sequence length, for the plain (solid) and the forced (dashed) loss."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    plot_gradient_horizon(horizon, ax=left, lyapunov=exponent)
    left.set_title(r"Lorenz-63 RK4 map: $\|\partial z_T/\partial z_{T-\ell}\|$", fontsize=10)
    times = np.array(config.lengths) * DT
    for index, (seed, curves) in enumerate(lengths.items()):
        model_rate = "diverged" if curves["model_lyapunov_max"] is None else f"{curves['model_lyapunov_max']:.2f}"
        label = f"seed {seed} (model $\\lambda$ {model_rate})"
        right.semilogy(times, curves["bptt"], marker="o", color=f"C{index}", label=f"BPTT loss, {label}")
        right.semilogy(times, curves["sparse_forcing"], marker="s", color=f"C{index}", linestyle="--", alpha=0.7)
    right.plot([], [], color="0.4", linestyle="--", marker="s", label=f"sparsely forced loss (tau {config.tau})")
    right.axvline(math.log(2) / exponent, color="0.5", linewidth=0.8, linestyle=":", label="predictability time")
    right.set(xlabel="sequence length T (time units)", ylabel=r"$\|\nabla_\theta L\|$ (held-out windows)")
    right.set_title("PLRNNs trained with sparse forcing", fontsize=10)
    right.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(out / "chaos_gradient_horizon.png", dpi=90)
    plt.close(figure)


def plot_training(histories: dict[str, TrainingHistory], out: Path) -> None:
    """Loss and gradient norm (before clipping) against the optimiser step, every arm."""
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    for arm, history in histories.items():
        top.semilogy(_smooth(history.losses), label=LABELS[arm], linewidth=1)
        bottom.semilogy(history.grad_norms, label=LABELS[arm], linewidth=0.5, alpha=0.8)
    top.set(ylabel="training loss (smoothed)")
    top.set_title("sparse forcing's loss is over forced rollouts (tau annealed 1 -> tau), BPTT's over free ones")
    top.title.set_fontsize(9)
    bottom.set(xlabel="optimiser step", ylabel="global gradient norm (before clipping)")
    top.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(out / "chaos_training.png", dpi=80)
    plt.close(figure)


def _smooth(values: list[float], width: int = 20) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    array = np.where(np.isfinite(array), array, np.nan)
    kernel = min(width, len(array))
    padded = np.concatenate([np.full(kernel - 1, array[0]), array])
    return np.array([np.nanmean(padded[i : i + kernel]) for i in range(len(array))])


def plot_prediction(models: dict[str, PLRNN], test: torch.Tensor, exponent: float, config: Config, out: Path) -> None:
    """Top: the x channel of a held-out trajectory and each model's free run from its first inferred
    state; bottom: the x-z projection of the data and of each model's long free run."""
    figure = plt.figure(figsize=(10, 6))
    grid = figure.add_gridspec(2, 1 + len(models), height_ratios=[1, 1.2])
    top = figure.add_subplot(grid[0, :])
    shown = min(400, test.shape[1] - 1)
    times = np.arange(shown + 1) * DT
    top.plot(times, test[0, : shown + 1, 0].numpy(), color="black", linewidth=1.5, label="data")
    for arm, model in models.items():
        run = free_run(model, test[:1], shown)
        if run is not None:
            top.plot(times, run[0, :, 0].numpy(), linewidth=1, label=LABELS[arm])
    top.axvline(math.log(2) / exponent, color="0.5", linewidth=0.8, linestyle="--", label="predictability time")
    top.set(xlabel="time", ylabel="x (standardised)", ylim=(-3.5, 3.5))
    top.legend(fontsize=7, ncol=5, loc="upper right")
    panels = {"data": test, **{arm: free_run(model, test, config.free_run) for arm, model in models.items()}}
    for column, (name, run) in enumerate(panels.items()):
        axes = figure.add_subplot(grid[1, column])
        if run is not None:
            points = (run[:, 500:] if name != "data" else run)[0].numpy()
            colour = "black" if column == 0 else f"C{column - 1}"
            axes.plot(points[:, 0], points[:, 2], linewidth=0.3, color=colour)
            if name != "data":  # the end of the run, visible when it collapsed to a point
                axes.plot(points[-1:, 0], points[-1:, 2], marker="o", markersize=3, color=colour)
        axes.set(xlim=(-3, 3), ylim=(-3, 3), xticks=[], yticks=[], xlabel="x", ylabel="z")
        axes.set_title(LABELS.get(name, name) + ("" if run is not None else " (diverged)"), fontsize=8)
    figure.tight_layout()
    figure.savefig(out / "chaos_prediction.png", dpi=80)
    plt.close(figure)


def markdown_table(arms: dict[str, dict]) -> str:
    """The numbers of every arm (`evaluate`'s dictionaries) as a markdown table, one row per metric."""
    lines = ["| metric | " + " | ".join(LABELS[arm] for arm in ARMS) + " |", "|---|" + "---|" * len(ARMS)]
    for row in arms["bptt"]:
        lines.append(f"| {row} | " + " | ".join(_format(arms[arm][row]) for arm in ARMS) + " |")
    return "\n".join(lines)


def _format(value: object) -> str:
    if value is None:
        return "diverged"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def parse_options(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="full", help="small: CI size; full: the study")
    parser.add_argument("--out", type=Path, default=Path("runs/chaos_gradients"), help="folder for figures")
    parser.add_argument("--seeds", type=int, nargs="+", help="training seeds (default: the size's; figures: the first)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    options = parser.parse_args(argv)
    torch.set_num_threads(options.threads)
    options.out.mkdir(parents=True, exist_ok=True)
    return options


def main(argv: list[str] | None = None) -> dict:
    """Run the study; returns (and prints, and writes to `summary.json`) its numbers.

    `summary["arms"]` holds the first seed's numbers (the one drawn in the figures) and
    `summary["seeds"]` every seed's.
    """
    options = parse_options(argv)
    config = SIZES[options.size]
    seeds = options.seeds or list(config.seeds)
    exponent = lorenz_exponent(config)
    horizon = lorenz_horizon(config)
    train = lorenz63(config.train_steps, DT, batch=config.train_trajectories, seed=config.seed)
    test = lorenz63(config.test_steps, DT, batch=config.test_trajectories, seed=config.seed + 100)
    per_seed, lengths, first = {}, {}, None
    for seed in seeds:
        trained = {arm: train_arm(arm, config, train, seed) for arm in ARMS}
        per_seed[str(seed)] = {arm: evaluate(model, history, test, config) for arm, (model, history) in trained.items()}
        lengths[str(seed)] = gradient_vs_length(trained["sparse_forcing"][0], test, config)
        lengths[str(seed)]["model_lyapunov_max"] = per_seed[str(seed)]["sparse_forcing"]["lyapunov_max"]
        first = first or trained
    arms = per_seed[str(seeds[0])]
    summary = {
        "size": options.size,
        "lorenz_lyapunov_max": exponent,
        "predictability_steps": math.log(2) / exponent / DT,
        "gradient_rate": horizon.mean_rate(),
        "gradient_rate_over_lyapunov": horizon.mean_rate() / exponent,
        "state_space_divergence_floor": divergence_floor(test, config),
        "config": config._asdict(),
        "arms": arms,
        "seeds": per_seed,
        "gradient_vs_length": {"lengths": list(config.lengths), "seeds": lengths},
    }
    plot_horizon(horizon, exponent, lengths, config, options.out)
    plot_training({arm: history for arm, (_, history) in first.items()}, options.out)
    plot_prediction({arm: model for arm, (model, _) in first.items()}, test, exponent, config, options.out)
    (options.out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps({key: value for key, value in summary.items() if key not in ("config", "seeds")}, indent=2))
    for seed, numbers in per_seed.items():
        print(f"\nseed {seed}\n" + markdown_table(numbers))
    return summary


if __name__ == "__main__":
    main()

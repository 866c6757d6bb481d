"""neuralct demo: three small, checkable solves, each with a plot.

1. Lotka-Volterra predator-prey: a batch of initial conditions, each on its own time grid,
   solved with `Tsit5` and compared with SciPy's `solve_ivp` sample by sample.
2. Van der Pol with a different stiffness parameter `mu` per sample: per-sample step-size
   control against one step size shared by the batch (the torchdiffeq convention), counted
   with `Solution.stats`.
3. Dense output and a backward-in-time solve: evaluate the solution anywhere between save
   times, then integrate from the end state back to t = 0 and recover the initial state.

Run `python examples/demo.py` (or `make demo`); `--small` runs a reduced version (used by the
tests). Plots are written to `examples/output/` unless `--out` says otherwise.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy.integrate import solve_ivp  # noqa: E402

import neuralct as nct  # noqa: E402

DTYPE = torch.float64
LV_PARAMS = (1.5, 1.0, 3.0, 1.0)  # prey growth, predation, predator death, predator growth


def lotka_volterra(t: torch.Tensor, y: torch.Tensor, args: object) -> torch.Tensor:
    """$\\dot x = a x - b x p$, $\\dot p = -c p + d x p$ for a batch `y` `[B, 2]`."""
    a, b, c, d = LV_PARAMS
    prey, predator = y[:, 0], y[:, 1]
    return torch.stack([a * prey - b * prey * predator, -c * predator + d * prey * predator], dim=-1)


def van_der_pol(t: torch.Tensor, y: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
    """$\\ddot x = \\mu (1 - x^2) \\dot x - x$ as a first-order system, `mu` `[B]` per sample."""
    x, v = y[:, 0], y[:, 1]
    return torch.stack([v, mu * (1 - x**2) * v - x], dim=-1)


def lotka_volterra_vs_scipy(batch: int, points: int, out: Path) -> float:
    """Solve a batch of predator-prey orbits on per-sample grids; return the max |neuralct - SciPy|."""
    prey0 = torch.linspace(0.5, 2.5, batch, dtype=DTYPE)
    y0 = torch.stack([prey0, torch.full_like(prey0, 1.0)], dim=-1)
    t_end = torch.linspace(8.0, 15.0, batch, dtype=DTYPE)
    t = t_end[:, None] * torch.linspace(0.0, 1.0, points, dtype=DTYPE)  # [B, K]: each sample its own grid

    controller = nct.PIDController(rtol=1e-9, atol=1e-9)
    sol = nct.solve(nct.ODETerm(lotka_volterra), y0, t, solver=nct.Tsit5(), controller=controller, max_steps=20_000)

    def rhs(tt: float, y: np.ndarray) -> np.ndarray:
        a, b, c, d = LV_PARAMS
        return np.array([a * y[0] - b * y[0] * y[1], -c * y[1] + d * y[0] * y[1]])

    worst = 0.0
    fig, ax = plt.subplots(figsize=(6, 5))
    for i in range(batch):
        ref = solve_ivp(rhs, (0.0, float(t_end[i])), y0[i].numpy(), method="DOP853", t_eval=t[i].numpy(),
                        rtol=1e-12, atol=1e-12)  # fmt: skip
        ys = sol.ys[i].numpy()
        worst = max(worst, float(np.abs(ys - ref.y.T).max()))
        ax.plot(ref.y[0], ref.y[1], color="0.75", lw=3, zorder=1)
        ax.plot(ys[:, 0], ys[:, 1], ".", ms=3, zorder=2, label=f"x0 = {float(prey0[i]):.2f}, T = {float(t_end[i]):.1f}")
    ax.set_xlabel("prey")
    ax.set_ylabel("predator")
    ax.set_title("Lotka-Volterra: neuralct Tsit5 (dots) on SciPy DOP853 (grey)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "lotka_volterra.png", dpi=120)
    plt.close(fig)

    steps = sol.stats.accepted.tolist()
    statuses = sorted({nct.Status(int(code)).name for code in sol.status})
    print(f"[1] Lotka-Volterra, {batch} samples on per-sample grids (t_end {float(t_end[0]):.1f} .. "
          f"{float(t_end[-1]):.1f}), statuses: {statuses}")  # fmt: skip
    print(f"    accepted steps per sample: {steps}")
    print(f"    max |neuralct - scipy| over all samples and save times: {worst:.2e}")
    return worst


def van_der_pol_step_counts(mus: list[float], out: Path) -> tuple[list[int], list[int]]:
    """Per-sample vs shared step-size control on Van der Pol with one `mu` per sample, at equal
    tolerance (rtol 1e-6): shared control is then the more accurate of the two, so its extra
    steps are not all waste (at equal error, per-sample control needs about 0.4x the evaluations;
    see `benchmarks/heterogeneous.py`)."""
    mu = torch.tensor(mus, dtype=DTYPE)
    y0 = torch.tensor([[2.0, 0.0]], dtype=DTYPE).expand(len(mus), -1)
    t = torch.linspace(0.0, 20.0, 401, dtype=DTYPE)
    term = nct.ODETerm(van_der_pol)
    counts = {}
    for per_sample in (True, False):
        controller = nct.PIDController(rtol=1e-6, atol=1e-8, per_sample=per_sample)
        sol = nct.solve(term, y0, t, controller=controller, args=mu, max_steps=50_000)
        counts[per_sample] = sol
    own, shared = counts[True], counts[False]

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for i, m in enumerate(mus):
        ax1.plot(t.numpy(), own.ys[i, :, 0].numpy(), label=f"mu = {m:g}")
    ax1.set_xlabel("t")
    ax1.set_ylabel("x")
    ax1.set_title("Van der Pol, one mu per sample")
    ax1.legend(fontsize=7)
    x = np.arange(len(mus))
    ax2.bar(x - 0.2, own.stats.steps.numpy(), 0.4, label="per-sample control")
    ax2.bar(x + 0.2, shared.stats.steps.numpy(), 0.4, label="shared control")
    ax2.set_xticks(x, [f"{m:g}" for m in mus])
    ax2.set_xlabel("mu")
    ax2.set_ylabel("steps (accepted + rejected)")
    ax2.set_title("Solution.stats.steps at equal tolerance")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "van_der_pol_steps.png", dpi=120)
    plt.close(fig)

    # A step budget that only the milder samples fit in: with throw=False each sample reports its own status.
    budget = sorted(own.stats.steps.tolist())[len(mus) // 2]
    capped = nct.solve(term, y0, t, controller=nct.PIDController(rtol=1e-6, atol=1e-8), args=mu,
                       max_steps=budget, throw=False)  # fmt: skip
    capped_status = [nct.Status(int(code)).name for code in capped.status]

    own_steps, shared_steps = own.stats.steps.tolist(), shared.stats.steps.tolist()
    gap = float((own.ys - shared.ys).abs().max())
    print(f"[2] Van der Pol, mu = {mus}, both controllers at rtol 1e-6 (equal tolerance, not equal error)")
    print(f"    steps, per-sample control: {own_steps} (total {sum(own_steps)})")
    print(f"    steps, shared control:     {shared_steps} (total {sum(shared_steps)})")
    print(f"    max |per-sample - shared| solution difference: {gap:.2e}")
    print(f"    with max_steps={budget}, throw=False: statuses {capped_status}")
    return own_steps, shared_steps


def dense_and_backward(points: int, out: Path) -> float:
    """Dense output between save times, then a backward solve from the end state to t = 0."""
    y0 = torch.tensor([[1.0, 0.5], [2.0, 2.0]], dtype=DTYPE)
    t_save = torch.linspace(0.0, 10.0, points, dtype=DTYPE)
    controller = nct.PIDController(rtol=1e-10, atol=1e-10)
    term = nct.ODETerm(lotka_volterra)
    forward = nct.solve(term, y0, t_save, controller=controller, dense=True, max_steps=20_000)
    t_fine = torch.linspace(0.0, 10.0, 1000, dtype=DTYPE).expand(2, -1)
    y_fine = forward.evaluate(t_fine)  # [B, 1000, 2] from the solver's interpolant

    backward = nct.solve(term, forward.y_final, t_save.flip(0), controller=controller, max_steps=20_000)
    recovered = float((backward.y_final - y0).abs().max())

    fig, ax = plt.subplots(figsize=(10, 4))
    for i in range(2):
        (line,) = ax.plot(t_fine[i].numpy(), y_fine[i, :, 0].numpy(), lw=1.2, label=f"dense output, sample {i}")
        ax.plot(t_save.numpy(), forward.ys[i, :, 0].numpy(), "o", ms=6, mfc="none", color=line.get_color(),
                label=f"save times, sample {i}")  # fmt: skip
        ax.plot(backward.ts[i].numpy(), backward.ys[i, :, 0].numpy(), "x", ms=5, color="k",
                label="backward solve" if i == 0 else None)  # fmt: skip
    ax.set_xlabel("t")
    ax.set_ylabel("prey")
    ax.set_title("Dense output (Solution.evaluate) and a solve backward in time")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(out / "dense_and_backward.png", dpi=120)
    plt.close(fig)

    print(f"[3] dense output at {t_fine.shape[1]} times from {points} save times; backward solve from t = 10 to 0")
    print(f"    max |y(0) recovered - y(0)|: {recovered:.2e}")
    return recovered


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", action="store_true", help="a reduced version for tests")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "output")
    options = parser.parse_args(argv)
    options.out.mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    batch, points = (3, 20) if options.small else (6, 200)
    mus = [0.5, 2.0, 8.0] if options.small else [0.5, 1.0, 2.0, 4.0, 8.0]
    lv_error = lotka_volterra_vs_scipy(batch, points, options.out)
    own, shared = van_der_pol_step_counts(mus, options.out)
    roundtrip = dense_and_backward(21, options.out)
    print(f"plots in {options.out} ({time.perf_counter() - start:.1f} s)")
    return {"lv_error": lv_error, "own_steps": sum(own), "shared_steps": sum(shared), "roundtrip": roundtrip}


if __name__ == "__main__":
    main()

"""Lyapunov spectra by the QR (Benettin) method, for discrete maps and for flows.

For a map $z_t = F_t(z_{t-1})$ with Jacobians $J_t = \\partial F_t / \\partial z$, start from an
orthonormal $Q_0$ with k columns and iterate $Q_t R_t = \\mathrm{qr}(J_t Q_{t-1})$; the k leading
exponents are $\\lambda_i = \\frac{1}{T \\Delta t} \\sum_t \\log |(R_t)_{ii}|$ over the steps after a
burn-in. A flow is studied through the one-step map of any neuralct solver at a fixed step $\\Delta t$
(the exponents of the discretised flow, which converge to the flow's as $\\Delta t \\to 0$ at the
solver's order).

Each step forms the per-sample Jacobians `[B, N, N]` by reverse mode (one call of the map and N
vector-Jacobian products, batched with `is_grads_batched`) and multiplies the k-column frame
`[B, N, k]`; the map must act on each row independently and be differentiable. Every sample of the batch is its own
trajectory with its own exponents; `LyapunovSpectrum.mean()` averages them.

```python
henon = lambda z, k: torch.stack([1 - 1.4 * z[:, 0] ** 2 + z[:, 1], 0.3 * z[:, 0]], dim=-1)
spectrum = lyapunov_spectrum(henon, torch.full((16, 2), 0.1, dtype=torch.float64), steps=20_000, burn_in=1000)
spectrum.mean()  # tensor([ 0.42, -1.62]); sums to log 0.3
```
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .._checks import check_int, describe
from ..errors import InvalidInputError
from ..solvers.base import AbstractSolver
from ..terms.base import AbstractTerm
from ._common import check_dt, check_state

Map = Callable[[Tensor, int], Tensor]


@dataclass(frozen=True)
class LyapunovSpectrum:
    """The k leading Lyapunov exponents of each trajectory, and how their estimates converged.

    Attributes:
        exponents: `[B, k]` exponents per unit time, in decreasing order of the QR columns
            (the usual order: the first is the largest).
        trace: `[S, B, k]` the running estimates after each of `S` recorded steps (every
            `record_every`-th step after the burn-in): a flat tail means converged.
        times: `[S]` the time measured after the burn-in at each recorded estimate.
        final_state: `[B, N]` the state after the last step.
    """

    exponents: Tensor
    trace: Tensor
    times: Tensor
    final_state: Tensor

    def mean(self) -> Tensor:
        """`[k]` the exponents averaged over the trajectories."""
        return self.exponents.mean(dim=0)

    def spread(self) -> Tensor:
        """`[k]` the standard deviation of the exponents over the trajectories (0 for one)."""
        return self.exponents.std(dim=0, correction=0)


def lyapunov_spectrum(
    step: Map,
    z0: Tensor,
    steps: int,
    *,
    k: int | None = None,
    burn_in: int = 0,
    dt: float = 1.0,
    record_every: int = 1,
    generator: torch.Generator | None = None,
) -> LyapunovSpectrum:
    """Lyapunov exponents of the map `z_t = step(z_{t-1}, t)` by the QR method.

    Args:
        step: the map, `(z [B, N], t) -> [B, N]`, acting on each row independently (`t` is the
            step index from 0, for driven maps such as an RNN reading its inputs; ignore it
            for an autonomous map). It must be differentiable in forward mode.
        z0: `[B, N]` initial states, one trajectory each (floating).
        steps: steps measured after the burn-in.
        k: exponents to compute, `1 <= k <= N` (default N).
        burn_in: steps taken first (the tangent frame is aligned, nothing is measured).
        dt: time per step: exponents are per unit time (1 for a map).
        record_every: keep the running estimate every this many steps in `trace`.
        generator: seeds the random orthonormal initial frame (default: torch's global one).

    Returns:
        The spectrum (see `LyapunovSpectrum`).

    Raises:
        InvalidInputError: `z0` not a finite floating `[B, N]` tensor, `k` outside `[1, N]`,
            non-positive `steps`, `dt` or `record_every`, negative `burn_in`, or a map that
            changes the state's shape.
    """
    batch, size = check_state(z0)
    k = size if k is None else k
    _check_counts(steps=steps, k=k, size=size, burn_in=burn_in, record_every=record_every)
    check_dt(dt)
    frame = _initial_frame(batch, size, k, z0, generator)
    z = z0
    for t in range(burn_in):
        z, frame, _ = _tangent_step(step, z, frame, t)
    sums = torch.zeros(batch, k, dtype=z0.dtype, device=z0.device)
    trace, times = [], []
    for n in range(1, steps + 1):
        z, frame, growth = _tangent_step(step, z, frame, burn_in + n - 1)
        sums = sums + growth
        if n % record_every == 0 or n == steps:
            trace.append(sums / (n * dt))
            times.append(n * dt)
    exponents = sums / (steps * dt)
    return LyapunovSpectrum(exponents, torch.stack(trace), torch.tensor(times, dtype=z0.dtype), z.detach())


def flow_map(term: AbstractTerm, solver: AbstractSolver, dt: float, *, t0: float = 0.0, args: Any = None) -> Map:
    """The one-step map of `solver` at the fixed step `dt`: `z -> y(t0 + (t+1) dt)` from
    `y(t0 + t dt) = z`, for `lyapunov_spectrum(..., dt=dt)` on a flow.

    Every call starts the solver afresh at `z` (a first-same-as-last method re-evaluates its
    first stage), so the map, and its Jacobian, depend on `z` alone.

    Args:
        term: the flow's term, e.g. `ODETerm(f)`.
        solver: any one-step neuralct solver that integrates `term` (`RK4()`, `Tsit5()`, ...).
        dt: the step.
        t0: the time of step 0 (matters for a non-autonomous term).
        args: passed to the term.

    Raises:
        IncompatibleTermError: `solver` cannot integrate `term`.
        InvalidInputError: `dt` not positive and finite.
    """
    check_dt(dt)
    solver.check_term(term)

    def one_step(z: Tensor, t: int) -> Tensor:
        times = torch.full(z.shape[:1], t0 + t * dt, dtype=z.dtype, device=z.device)
        carry, _ = solver.init(term, times, z, args)
        return solver.step(term, times, z, torch.full_like(times, dt), carry, args, False).y1

    return one_step


def _tangent_step(step: Map, z: Tensor, frame: Tensor, t: int) -> tuple[Tensor, Tensor, Tensor]:
    """The next state, the re-orthonormalised frame `[B, N, k]` and `[B, k]` log growths."""
    moved, jacobian = step_jacobian(step, z, t)
    q, r = torch.linalg.qr(jacobian @ frame)
    diagonal = torch.diagonal(r, dim1=-2, dim2=-1)
    # The sign of each column does not matter; keeping R's diagonal positive keeps Q continuous.
    signs = torch.where(diagonal < 0, -1.0, 1.0).to(q.dtype)
    return moved, q * signs[:, None, :], diagonal.abs().log()


def step_jacobian(step: Map, z: Tensor, t: int = 0) -> tuple[Tensor, Tensor]:
    """The map's next state `[B, N]` and its per-sample Jacobian `[B, N, N]` at `z`.

    One call of `step` and N vector-Jacobian products, batched (`is_grads_batched`).

    Raises:
        InvalidInputError: `step` does not return a tensor shaped like `z`.
    """
    batch, size = z.shape
    with torch.enable_grad():
        state = z.detach().requires_grad_(True)
        out = step(state, t)
        if not isinstance(out, Tensor) or out.shape != z.shape:
            raise InvalidInputError(
                f"`step` must return a tensor shaped like the state [B, {size}]; got {describe(out)}"
            )
        if not out.requires_grad:  # a map that does not depend on the state
            return out.detach(), torch.zeros(batch, size, size, dtype=z.dtype, device=z.device)
        basis = torch.eye(size, dtype=z.dtype, device=z.device)[:, None, :].expand(size, batch, size)
        rows = torch.autograd.grad(out, state, grad_outputs=basis, is_grads_batched=True, allow_unused=True)[0]
    if rows is None:
        rows = torch.zeros(size, batch, size, dtype=z.dtype, device=z.device)
    return out.detach(), rows.permute(1, 0, 2)


def _initial_frame(batch: int, size: int, k: int, like: Tensor, generator: torch.Generator | None) -> Tensor:
    noise = torch.randn(batch, size, k, generator=generator, dtype=like.dtype)
    return torch.linalg.qr(noise)[0].to(like.device)


def _check_counts(*, steps: int, k: int, size: int, burn_in: int, record_every: int) -> None:
    check_int("steps", steps)
    check_int("burn_in", burn_in, low=0)
    check_int("record_every", record_every)
    check_int("k", k, 1, size)


__all__ = ["LyapunovSpectrum", "flow_map", "lyapunov_spectrum", "step_jacobian"]

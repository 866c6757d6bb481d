"""Sparsely forced backpropagation through time (Mikhaeil, Monfared & Durstewitz, NeurIPS 2022).

When a recurrent model is chaotic (leading Lyapunov exponent $\\lambda_{max} > 0$), the gradient of a
loss over a long free-running rollout grows like $e^{\\lambda_{max} T}$ with the sequence length T:
plain BPTT explodes. Sparse forcing cuts the gradient path every $\\tau$ steps: at those steps the
latent state is replaced by the data-inferred state $\\hat z_t = B^{+} x_t$, which is computed from
the observation, not from the previous latent, so no gradient travels back through it to earlier
states (it still depends on $B$ through $B^{+}$, so gradients reach the observation model there, as
in the reference). Gradients through the dynamics then span at most $\\tau$ steps; the paper's
advice is $\\tau \\approx \\ln 2 / \\lambda_{max}$ (the predictability time), and its code anneals
the interval linearly from 1 to $\\tau$ over the epochs.

Alignment (as in the reference, `DurstewitzLab/ChaosRNN`, `bptt/PLRNN_model.py`): the rollout
starts at $\\hat z_0$; the prediction of $x_t$ is `observe(step(s_{t-1}))`, where the starting state
$s_{t-1}$ is $\\hat z_{t-1}$ at a forcing step ($t - 1$ a multiple of $\\tau$) and the previous
prediction $z_{t-1}$ otherwise. With $\\tau = 1$ this is teacher forcing (one-step-ahead
prediction from data); with $\\tau = $ `None` (or $\\tau \\ge T$) only step 0 is forced: plain BPTT.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from neuralct._checks import check_int, check_number, check_sizes
from neuralct.errors import InvalidInputError

from .plrnn import PLRNN


@dataclass(frozen=True)
class ForcedRollout:
    """A rollout along observed data with sparse forcing.

    Attributes:
        latents: `[B, T, M]` the latent predictions: `latents[:, 0]` is $\\hat z_0$, `latents[:, t]`
            the state predicted for step t.
        predictions: `[B, T, obs]` `observe(latents)`.
        forced: the steps whose successor started from the data-inferred state (0, τ, 2τ, ...).
        loss: the mean squared error between `predictions[:, 1:]` and `x[:, 1:]` (a scalar).
    """

    latents: Tensor
    predictions: Tensor
    forced: tuple[int, ...]
    loss: Tensor


@dataclass(frozen=True)
class TrainingHistory:
    """Per-epoch records of `train_forced` (one optimiser step per epoch).

    Attributes:
        losses: the training loss of each epoch (under that epoch's forcing interval).
        grad_norms: the global gradient norm of each epoch, before clipping (inf or nan when the
            gradient overflowed).
        taus: the forcing interval used at each epoch (`None`: plain BPTT).
        skipped: the epochs whose update was skipped because the loss or gradient was not finite.
    """

    losses: list[float]
    grad_norms: list[float]
    taus: list[int | None]
    skipped: list[int]


def forced_rollout(model: PLRNN, x: Tensor, tau: int | None = None) -> ForcedRollout:
    """Run `model` along the observations `x` from $\\hat z_0 = B^{+} x_0$, forcing every `tau` steps.

    Args:
        model: the PLRNN (anything with `step_function`, `observe` and `infer_state`).
        x: `[B, T, obs]` observed sequences, T >= 2.
        tau: the forcing interval (>= 1), or `None` for plain BPTT (free-running from $\\hat z_0$).

    Returns:
        The latents, predictions, forced steps and loss (see `ForcedRollout`).

    Raises:
        InvalidInputError: `x` not `[B, T, obs]` with T >= 2, or `tau` not `None` nor an int >= 1.
    """
    _check_sequence(x)
    _check_tau(tau)
    length = x.shape[1]
    inferred = model.infer_state(x)
    forced = forcing_steps(length, tau)
    advance = model.step_function()
    latents = [inferred[:, 0]]
    for t in range(1, length):
        start = inferred[:, t - 1] if (t - 1) in forced else latents[-1]
        latents.append(advance(start))
    stacked = torch.stack(latents, dim=1)
    predictions = model.observe(stacked)
    loss = torch.mean((predictions[:, 1:] - x[:, 1:]) ** 2)
    return ForcedRollout(stacked, predictions, tuple(sorted(forced)), loss)


def forcing_steps(length: int, tau: int | None) -> frozenset[int]:
    """The steps in `[0, length - 1)` whose successor starts from data: multiples of `tau` (only 0 for `None`)."""
    if tau is None:
        return frozenset({0})
    return frozenset(range(0, length - 1, tau)) | {0}


def anneal_tau(epoch: int, epochs: int, tau: int | None) -> int | None:
    """The forcing interval at `epoch` (0-based) of `epochs`: linear from 1 to `tau`, rounded down.

    $\\tau_e = 1 + \\lfloor (\\tau - 1)\\, e / (E - 1) \\rfloor$, so the first epoch is teacher forced
    and the last uses `tau` (the reference anneals `n_interleave` this way). `None` stays `None`.

    Raises:
        InvalidInputError: `epochs < 1`, `epoch` outside `[0, epochs)`, or a bad `tau`.
    """
    _check_tau(tau)
    check_int("epoch", epoch, 0, check_int("epochs", epochs) - 1)
    if tau is None or epochs == 1:
        return tau
    return 1 + (tau - 1) * epoch // (epochs - 1)


def train_forced(
    model: PLRNN,
    data: Tensor,
    *,
    tau: int | None,
    epochs: int,
    lr: float,
    batch: int,
    seq_len: int,
    clip_norm: float | None = None,
    seed: int = 0,
    anneal: bool = True,
) -> TrainingHistory:
    """Train `model` with sparsely forced BPTT (plain BPTT for `tau=None`) and Adam.

    Each epoch is one optimiser step on `batch` windows of `seq_len` steps drawn at random
    (seeded by `seed`, so two runs with the same seed see the same windows) from `data`. The
    forcing interval is annealed by `anneal_tau` when `anneal`. An update whose loss or gradient
    is not finite is skipped (and recorded), so one overflow does not poison the parameters.

    Args:
        model: the PLRNN to train in place.
        data: `[S, L, obs]` (or `[L, obs]`) observed trajectories, with L >= `seq_len`.
        tau: the forcing interval, or `None` for plain BPTT.
        epochs: optimiser steps.
        lr: Adam's learning rate.
        batch: windows per step.
        seq_len: steps per window (T >= 2).
        clip_norm: clip the global gradient norm to this value (`None`: no clipping).
        seed: seeds the windows.
        anneal: anneal `tau` from 1 (otherwise use `tau` throughout).

    Returns:
        The per-epoch losses, gradient norms before clipping, intervals and skipped epochs.

    Raises:
        InvalidInputError: bad sizes, a non-positive `lr` or `clip_norm`, or data shorter than `seq_len`.
    """
    trajectories = _check_training(data, tau=tau, epochs=epochs, lr=lr, batch=batch, seq_len=seq_len, clip=clip_norm)
    generator = torch.Generator().manual_seed(seed)
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(parameters, lr=lr)
    history = TrainingHistory([], [], [], [])
    for epoch in range(epochs):
        interval = anneal_tau(epoch, epochs, tau) if anneal else tau
        optimizer.zero_grad()
        loss = forced_rollout(model, random_windows(trajectories, batch, seq_len, generator), interval).loss
        loss.backward()
        norm = _clip_gradients(parameters, clip_norm)
        value = float(loss.detach())
        if math.isfinite(value) and math.isfinite(norm):
            optimizer.step()
        else:
            history.skipped.append(epoch)
        history.losses.append(value)
        history.grad_norms.append(norm)
        history.taus.append(interval)
    return history


def random_windows(data: Tensor, batch: int, seq_len: int, generator: torch.Generator) -> Tensor:
    """`[batch, seq_len, obs]` windows of `data` `[S, L, obs]` at random trajectories and starts."""
    rows = torch.randint(data.shape[0], (batch,), generator=generator)
    starts = torch.randint(data.shape[1] - seq_len + 1, (batch,), generator=generator)
    offsets = starts[:, None] + torch.arange(seq_len)
    return data[rows[:, None], offsets]


def prediction_error(model: PLRNN, x: Tensor, ahead: int) -> Tensor:
    """Mean squared error of the `ahead`-step prediction from every data-inferred state of `x`.

    From $\\hat z_t = B^{+} x_t$ at every $t \\le T - 1 - $ `ahead`, the model runs `ahead` steps
    freely and `observe` is compared with $x_{t + \\text{ahead}}$.

    Args:
        model: the PLRNN.
        x: `[B, T, obs]` held-out sequences, T > `ahead`.
        ahead: steps predicted, >= 1.

    Returns:
        `[ahead]` the error after 1, 2, ..., `ahead` steps (mean over samples, starts and channels).

    Raises:
        InvalidInputError: `x` not `[B, T, obs]` or `ahead` not in `[1, T)`.
    """
    _check_sequence(x)
    check_int("ahead", ahead, 1, x.shape[1] - 1)
    starts = x.shape[1] - ahead
    with torch.no_grad():
        z = model.infer_state(x[:, :starts]).reshape(-1, model.latent)
        advance = model.step_function()
        errors = []
        for k in range(1, ahead + 1):
            z = advance(z)
            target = x[:, k : k + starts].reshape(-1, x.shape[-1])
            errors.append(torch.mean((model.observe(z) - target) ** 2))
    return torch.stack(errors)


def _clip_gradients(parameters: Sequence[nn.Parameter], clip_norm: float | None) -> float:
    """The global gradient norm before clipping; clips in place to `clip_norm` when given and finite."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return 0.0
    norm = float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))
    if clip_norm is not None and math.isfinite(norm) and norm > clip_norm:
        for g in grads:
            g.mul_(clip_norm / norm)
    return norm


def _check_sequence(x: Tensor) -> None:
    if not isinstance(x, Tensor) or x.ndim != 3 or x.shape[1] < 2 or not x.is_floating_point():
        got = f"{x.dtype} {tuple(x.shape)}" if isinstance(x, Tensor) else type(x).__name__
        raise InvalidInputError(f"`x` must be a floating tensor [B, T, obs] with T >= 2; got {got}")


def _check_tau(tau: int | None) -> None:
    check_int("tau", tau, optional=True)


def _check_training(
    data: Tensor, *, tau: int | None, epochs: int, lr: float, batch: int, seq_len: int, clip: float | None
) -> Tensor:
    """`data` as `[S, L, obs]`, after checking every argument of `train_forced`."""
    _check_tau(tau)
    check_sizes(epochs=epochs, batch=batch)
    check_int("seq_len", seq_len, 2)
    check_number("lr", lr, 0.0, open_low=True, optional=True)
    check_number("clip_norm", clip, 0.0, open_low=True, optional=True)
    trajectories = data[None] if isinstance(data, Tensor) and data.ndim == 2 else data
    _check_sequence(trajectories)
    if trajectories.shape[1] < seq_len:
        raise InvalidInputError(
            f"`data` has {trajectories.shape[1]} steps per trajectory, fewer than seq_len={seq_len}"
        )
    return trajectories


__all__ = [
    "ForcedRollout",
    "TrainingHistory",
    "anneal_tau",
    "forced_rollout",
    "forcing_steps",
    "prediction_error",
    "random_windows",
    "train_forced",
]

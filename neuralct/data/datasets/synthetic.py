"""Synthetic irregularly sampled datasets with a known ground truth: spirals and damped oscillators.

Every draw comes from a `torch.Generator` seeded by `(seed, split)`, so a dataset is the same
on every run and its train, validation and test splits are independent draws.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..series import IrregularBatch
from ._common import check_count, check_scale, generator_for


def spirals(split: str, seed: int, size: int = 128, length: int = 64, noise: float = 0.05) -> IrregularBatch:
    """Irregular spirals: clockwise (class 0) or anticlockwise (class 1), 2 channels, random lengths.

    Sample b has a random length $L_b$ in `[length // 2, length]` and times $t_k$ built from
    gaps drawn uniformly in $[0.25, 1.75] \\cdot 4\\pi / \\text{length}$ (so $t_0 = 0$ and the mean
    span is about $4\\pi$, two turns). Its observations are

    $$x_k = r_0 e^{-0.1 t_k}\\,(\\cos\\theta_k, \\sin\\theta_k) + \\sigma \\varepsilon_k, \\qquad
    \\theta_k = \\phi + d\\,\\omega\\,t_k,$$

    with direction $d = -1$ (clockwise, label 0) or $+1$ (anticlockwise, label 1), $r_0 \\sim U(0.8, 1.2)$,
    $\\omega \\sim U(0.8, 1.2)$, $\\phi \\sim U(0, 2\\pi)$ and $\\varepsilon_k \\sim N(0, I)$. Ground
    truth: the label is the sign of the turning direction (of $x \\times \\dot x$).

    - Source: generated (after the spiral toy of torchcde); licence: that of neuralct.
    - Sizes: `size` samples per split ("train", "val", "test"); C = 2; lengths `[length // 2, length]`.
    - Targets: `long` class 0 (clockwise) or 1 (anticlockwise), drawn with probability 1/2.
    - Times: the generated times above (irregular, in radians at $\\omega = 1$).

    Args:
        split: "train", "val" or "test".
        seed: the seed of the draw.
        size: number of samples B.
        length: the longest series T (at least 4).
        noise: observation noise standard deviation $\\sigma$.
    """
    check_count(size=(size, 1), length=(length, 4))
    check_scale("noise", noise)
    generator = generator_for(seed, split)
    dtype = torch.get_default_dtype()
    lengths = torch.randint(length // 2, length + 1, (size,), generator=generator)
    times = _irregular_times(generator, size, length, span=4 * math.pi, dtype=dtype)
    labels = torch.randint(0, 2, (size,), generator=generator)
    radius, omega, phase = (_uniform(generator, size, low, high, dtype) for low, high in _SPIRAL_RANGES)
    angle = phase[:, None] + (2 * labels[:, None] - 1).to(dtype) * omega[:, None] * times
    clean = (radius[:, None] * torch.exp(-0.1 * times)).unsqueeze(-1) * torch.stack([angle.cos(), angle.sin()], -1)
    values = clean + noise * torch.randn(clean.shape, generator=generator, dtype=dtype)
    return IrregularBatch.from_padded(
        times, values, mask=torch.ones_like(values, dtype=torch.bool), lengths=lengths, targets=labels
    )


_SPIRAL_RANGES = ((0.8, 1.2), (0.8, 1.2), (0.0, 2 * math.pi))


@dataclass(frozen=True)
class Oscillators:
    """Damped harmonic oscillators drawn by [`damped_oscillators`][neuralct.data.datasets.synthetic.damped_oscillators].

    Args:
        batch: the noisy observations, with the clean state as `targets` `[B, T, 2]`.
        omega: `[B]` natural angular frequencies $\\omega$.
        zeta: `[B]` damping ratios $\\zeta$ (all below 1: underdamped).
        initial: `[B, 2]` initial positions and velocities at $t = 0$.
    """

    batch: IrregularBatch
    omega: Tensor
    zeta: Tensor
    initial: Tensor


def damped_oscillators(
    generator: torch.Generator, size: int = 128, length: int = 50, noise: float = 0.1, span: float = 10.0
) -> Oscillators:
    """Draw noisy observations of damped oscillators $\\ddot x + 2\\zeta\\omega\\dot x + \\omega^2 x = 0$.

    Each sample has $\\omega \\sim U(1, 3)$, $\\zeta \\sim U(0.05, 0.3)$, $(x_0, \\dot x_0) \\sim N(0, I)$ and
    `length` irregular times from $t_0 = 0$ with gaps uniform in $[0.25, 1.75] \\cdot$ `span / length`.
    The clean state is the closed form, with $\\omega_d = \\omega\\sqrt{1 - \\zeta^2}$:

    $$x(t) = e^{-\\zeta\\omega t}\\Big(x_0 \\cos\\omega_d t + \\frac{\\dot x_0 + \\zeta\\omega x_0}{\\omega_d}
    \\sin\\omega_d t\\Big),$$

    and $\\dot x$ its derivative. One channel is observed: $x(t_k) + \\sigma\\varepsilon_k$.

    Args:
        generator: the random source.
        size: number of samples B.
        length: number of observations T per sample.
        noise: observation noise standard deviation $\\sigma$.
        span: the mean time span of a sample.

    Returns:
        The batch (values `[B, T, 1]`, targets `[B, T, 2]` clean position and velocity) and the
        parameters that made it.
    """
    check_count(size=(size, 1), length=(length, 2))
    check_scale("noise", noise)
    check_scale("span", span, positive=True)
    dtype = torch.get_default_dtype()
    omega = _uniform(generator, size, 1.0, 3.0, dtype)
    zeta = _uniform(generator, size, 0.05, 0.3, dtype)
    initial = torch.randn(size, 2, generator=generator, dtype=dtype)
    times = _irregular_times(generator, size, length, span=span, dtype=dtype)
    decay, damped = (zeta * omega)[:, None], (omega * torch.sqrt(1 - zeta**2))[:, None]
    a = initial[:, :1]
    b = (initial[:, 1:] + decay * a) / damped
    cos, sin, envelope = torch.cos(damped * times), torch.sin(damped * times), torch.exp(-decay * times)
    position = envelope * (a * cos + b * sin)
    velocity = envelope * ((damped * b - decay * a) * cos - (damped * a + decay * b) * sin)
    values = position.unsqueeze(-1) + noise * torch.randn(size, length, 1, generator=generator, dtype=dtype)
    targets = torch.stack([position, velocity], dim=-1)
    batch = IrregularBatch.from_padded(times, values, mask=torch.ones_like(values, dtype=torch.bool), targets=targets)
    return Oscillators(batch=batch, omega=omega, zeta=zeta, initial=initial)


def oscillators(
    split: str, seed: int, size: int = 128, length: int = 50, noise: float = 0.1, span: float = 10.0
) -> IrregularBatch:
    """Damped oscillators: noisy irregular positions -> the clean position and velocity (regression).

    The draw of [`damped_oscillators`][neuralct.data.datasets.synthetic.damped_oscillators] with the
    generator of `(seed, split)`; call that function to also get each sample's $\\omega$, $\\zeta$
    and initial state.

    - Source: generated (closed-form solution, no solver error); licence: that of neuralct.
    - Sizes: `size` samples per split ("train", "val", "test"); C = 1; every length `length`.
    - Targets: float `[B, T, 2]`, the clean $(x, \\dot x)$ at every observation time (denoising
      and state estimation; with `missing_rate` the targets stay complete).
    - Times: the generated irregular times, $t_0 = 0$, mean span `span`.
    """
    return damped_oscillators(generator_for(seed, split), size=size, length=length, noise=noise, span=span).batch


def _irregular_times(generator: torch.Generator, size: int, length: int, span: float, dtype: torch.dtype) -> Tensor:
    """`[size, length]` times from 0 with gaps uniform in `[0.25, 1.75] * span / length` (strictly increasing)."""
    gaps = (0.25 + 1.5 * torch.rand(size, length - 1, generator=generator, dtype=torch.float64)) * (span / length)
    return torch.cat([torch.zeros(size, 1, dtype=torch.float64), gaps.cumsum(dim=1)], dim=1).to(dtype)


def _uniform(generator: torch.Generator, size: int, low: float, high: float, dtype: torch.dtype) -> Tensor:
    return low + (high - low) * torch.rand(size, generator=generator, dtype=dtype)

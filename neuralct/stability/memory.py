"""Memory profiles of linear state-space layers: impulse responses and how fast they decay.

A linear SSM layer maps its input through a causal convolution with its impulse response (kernel)
$k_0, k_1, \\ldots$ per channel, so its memory is read off the kernel: how much of the kernel's
energy $\\sum_j k_j^2$ lies within the first $\\ell$ lags (`memory_length`), and the exponential rate
at which its envelope decays (`decay_rate`). HiPPO-LegT remembers a sliding window and forgets
what lies beyond it, HiPPO-LegS decays like a power law (scale invariance), a diagonal SSM (S4D)
decays at each mode's $\\mathrm{Re}(a)\\,\\Delta$, and HOPE's kernel is bounded by its n Markov
parameters. `memory_profile` works on any layer with a `kernel(length)` method: `S4D`, `HOPE`
(causal mode) and `LSSL` in neuralct, or your own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .._checks import check_int, describe
from ..errors import InvalidInputError
from ._common import slopes


@dataclass(frozen=True)
class MemoryProfile:
    """The impulse responses of a layer's channels.

    Attributes:
        kernel: `[H, L]` the impulse response of each channel, lag 0 first (a layer with
            several output channels per feature has them flattened into H).
    """

    kernel: Tensor

    def energy(self) -> Tensor:
        """`[H, L]` the fraction of each channel's kernel energy within lags 0..l."""
        squares = self.kernel.detach().double() ** 2
        total = squares.sum(dim=-1, keepdim=True).clamp_min(torch.finfo(torch.float64).tiny)
        return squares.cumsum(dim=-1) / total

    def memory_length(self, fraction: float = 0.99) -> Tensor:
        """`[H]` the fewest lags (counting lag 0) holding `fraction` of each kernel's energy."""
        if not 0 < fraction <= 1:
            raise InvalidInputError(f"`fraction` must be in (0, 1]; got {fraction!r}")
        return (self.energy() < fraction - 1e-12).sum(dim=-1) + 1

    def envelope(self) -> Tensor:
        """`[H, L]` the running maximum of $|k_j|$ from the right: a monotone upper envelope
        (oscillating kernels are bounded by it)."""
        magnitude = self.kernel.detach().double().abs()
        return magnitude.flip(-1).cummax(dim=-1).values.flip(-1)

    def decay_rate(self, start: int = 0, stop: int | None = None) -> Tensor:
        """`[H]` the exponential decay per lag of the envelope, $-$(slope of its log) fitted by
        least squares over lags `start` to `stop` (positive: the memory fades)."""
        envelope = self.envelope()[:, start:stop]
        if envelope.shape[-1] < 2:
            raise InvalidInputError(f"`start`, `stop` must leave at least 2 lags; got {start}, {stop}")
        logs = envelope.clamp_min(torch.finfo(torch.float64).tiny).log()
        return -slopes(torch.arange(start, start + envelope.shape[-1], dtype=torch.float64), logs)


def memory_profile(layer: Any, length: int, **kernel_options: Any) -> MemoryProfile:
    """The impulse responses of `layer` over `length` lags.

    Args:
        layer: any object whose `kernel(length, **kernel_options)` returns `[H, L]` or
            `[H, M, L]` (e.g. `S4D`, `HOPE` in causal mode, `LSSL`).
        length: lags L.
        kernel_options: passed to `layer.kernel` (e.g. `dt_scale` for `LSSL`).

    Raises:
        InvalidInputError: a layer without a kernel, a bad `length`, or a kernel of another shape.
    """
    check_int("length", length, 2)
    kernel_of = getattr(layer, "kernel", None)
    if not callable(kernel_of):
        raise InvalidInputError(f"`layer` must have a kernel(length) method; {type(layer).__name__} has none")
    with torch.no_grad():
        kernel = kernel_of(length, **kernel_options)
    if not isinstance(kernel, Tensor) or kernel.ndim not in (2, 3) or kernel.shape[-1] != length:
        raise InvalidInputError(
            f"`layer.kernel({length})` must return [H, {length}] or [H, M, {length}]; got {describe(kernel)}"
        )
    return MemoryProfile(kernel.reshape(-1, length))


__all__ = ["MemoryProfile", "memory_profile"]

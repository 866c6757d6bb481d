"""The diffusion term $\\sigma(t, y)\\,dW(t)$ of a stochastic differential equation."""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from .._checks import describe
from .._validate import check_field_output
from ..errors import IncompatibleTermError, InvalidInputError
from .base import AbstractTerm


class NoiseType(enum.Enum):
    """The structure of the diffusion $\\sigma$, which decides what `g` returns and which
    solvers apply (Kloeden & Platen, "Numerical Solution of Stochastic Differential
    Equations", Springer 1992, sections 10.3 and 10.4).

    Attributes:
        DIAGONAL: each state channel has its own Brownian channel and $\\sigma_i$ depends on
            $y_i$ only; `g` returns `[B, *state]` and the Brownian motion is `[B, *state]`.
        ADDITIVE: $\\sigma$ does not depend on $y$ (the user declares it); `g` returns
            `[B, D, M]`.
        SCALAR: one Brownian channel; `g` returns `[B, D, 1]`.
        GENERAL: any `[B, D, M]` matrix.
    """

    DIAGONAL = "diagonal"
    ADDITIVE = "additive"
    SCALAR = "scalar"
    GENERAL = "general"


class SDEType(enum.Enum):
    """How the stochastic integral is read.

    Attributes:
        ITO: the Itô integral (left-point evaluation).
        STRATONOVICH: the Stratonovich integral (midpoint evaluation); ordinary chain rule.
    """

    ITO = "ito"
    STRATONOVICH = "stratonovich"


class BrownianIncrements(Protocol):
    """What a `NoiseTerm` needs from its Brownian motion (`neuralct.BrownianPath` is one).

    `shape` is `(B, M)` (or `(B, *state)` for diagonal noise); `increment(ta, tb)` takes
    `[B]` times and returns `W(tb) - W(ta)` with that shape.
    """

    shape: tuple[int, ...]
    dtype: torch.dtype
    device: torch.device

    def increment(self, ta: Tensor, tb: Tensor) -> Tensor: ...


class NoiseTerm(AbstractTerm):
    """Diffusion term $\\sigma(t, y)\\,dW(t)$ driven by a Brownian motion.

    Combine it with a drift in an [`SDETerm`][neuralct.SDETerm] to make an SDE.

    Args:
        g: callable `g(t, y, args)` with `t` `[B]` and `y` `[B, *state]`, returning the
            diffusion: `[B, *state]` for `NoiseType.DIAGONAL`, `[B, D, M]` for `GENERAL` and
            `ADDITIVE` (and then independent of `y`, as the user declares), `[B, D, 1]`
            for `SCALAR`. An `nn.Module` is registered as a submodule.
        brownian: the Brownian motion, e.g. `nct.BrownianPath(t0, t1, shape=(B, M), seed=0)`.
        noise_type: a [`NoiseType`][neuralct.NoiseType].
        sde_type: an [`SDEType`][neuralct.SDEType].

    Raises:
        TypeError: `g` not callable, `brownian` without `increment`/`shape`, or the types
            given as something other than the enums.
        InvalidInputError: scalar noise with a Brownian motion of more than one channel.
    """

    def __init__(
        self,
        g: Callable[[Tensor, Tensor, Any], Tensor],
        brownian: BrownianIncrements,
        noise_type: NoiseType = NoiseType.DIAGONAL,
        sde_type: SDEType = SDEType.ITO,
    ):
        super().__init__()
        if not callable(g):
            raise TypeError(f"`g` must be callable as g(t, y, args); got {describe(g)}")
        if not (callable(getattr(brownian, "increment", None)) and hasattr(brownian, "shape")):
            raise TypeError(
                f"`brownian` must have increment(ta, tb) and shape, like nct.BrownianPath; got {describe(brownian)}"
            )
        if not isinstance(noise_type, NoiseType):
            raise TypeError(f"`noise_type` must be a nct.NoiseType (e.g. NoiseType.DIAGONAL); got {noise_type!r}")
        if not isinstance(sde_type, SDEType):
            raise TypeError(f"`sde_type` must be a nct.SDEType (e.g. SDEType.ITO); got {sde_type!r}")
        shape = tuple(brownian.shape)
        if noise_type == NoiseType.SCALAR and (len(shape) != 2 or shape[1] != 1):
            raise InvalidInputError(f"`brownian` must have shape (B, 1) for NoiseType.SCALAR; got {shape}")
        if noise_type in (NoiseType.GENERAL, NoiseType.ADDITIVE) and len(shape) != 2:
            raise InvalidInputError(f"`brownian` must have shape (B, M) for {noise_type}; got {shape}")
        self.g = g
        self.brownian = brownian
        self.noise_type = noise_type
        self.sde_type = sde_type

    @property
    def matrix_valued(self) -> bool:
        """Whether `g` returns a `[B, D, M]` matrix (every noise type but diagonal)."""
        return self.noise_type != NoiseType.DIAGONAL

    def check_state(self, y0: Tensor) -> None:
        """Raise when the Brownian motion does not fit the state `y0` `[B, *state]`.

        Raises:
            InvalidInputError: batch or channel mismatch, or a matrix-valued noise with a
                state that is not `[B, D]`.
            IncompatibleTermError: the Brownian motion's dtype or device differs from `y0`'s.
        """
        shape = tuple(self.brownian.shape)
        if shape[0] != y0.shape[0]:
            raise InvalidInputError(
                f"`brownian` has batch size {shape[0]} (shape {shape}) but `y0` has {y0.shape[0]} "
                f"(shape {tuple(y0.shape)})"
            )
        if self.noise_type == NoiseType.DIAGONAL and shape != tuple(y0.shape):
            raise InvalidInputError(
                f"`brownian` must have the shape of `y0` {tuple(y0.shape)} for NoiseType.DIAGONAL; got {shape}"
            )
        if self.matrix_valued and y0.ndim != 2:
            raise InvalidInputError(f"`y0` must be [B, D] for {self.noise_type}; got shape {tuple(y0.shape)}")
        dtype, device = getattr(self.brownian, "dtype", y0.dtype), getattr(self.brownian, "device", y0.device)
        if dtype != y0.dtype or torch.device(device) != y0.device:
            raise IncompatibleTermError(
                f"`brownian` has dtype {dtype} on {device} but `y0` has {y0.dtype} on {y0.device}; "
                f"build the BrownianPath with dtype={y0.dtype}, device={str(y0.device)!r}"
            )

    def diffusion(self, t: Tensor, y: Tensor, args: Any) -> Tensor:
        """$\\sigma(t, y)$ with its shape checked: `t` `[B]`, `y` `[B, *state]` -> `[B, *state]`
        (diagonal) or `[B, D, M]`.

        Raises:
            InvalidInputError: `g` returned the wrong shape for the noise type.
            IncompatibleTermError: `g` returned another dtype or device than `y`'s.
        """
        value = self.g(t, y, args)
        shape = tuple(value.shape) if isinstance(value, Tensor) else None
        if self.noise_type == NoiseType.DIAGONAL:
            expected = tuple(y.shape)
        else:
            expected = (*y.shape, 1 if self.noise_type == NoiseType.SCALAR else self.brownian.shape[-1])
        if shape != expected:
            letters = "[B, *state]" if self.noise_type == NoiseType.DIAGONAL else "[B, D, M]"
            raise InvalidInputError(
                f"`g(t, y, args)` must return {letters} = {list(expected)} for {self.noise_type}; "
                f"got {'a ' + type(value).__name__ if shape is None else list(shape)}"
            )
        return check_field_output(self, value, y, expected)

    def increment(self, ta: Tensor, tb: Tensor) -> Tensor:
        """Brownian increments $W(t_b) - W(t_a)$ for `[B]` times -> `[B, M]` (or `[B, *state]`)."""
        return self.brownian.increment(ta, tb)

    def prod(self, g_value: Tensor, dw: Tensor) -> Tensor:
        """The increment $\\sigma\\,\\Delta W$ of the state.

        Args:
            g_value: `[B, *state]` (diagonal) or `[B, D, M]` diffusion.
            dw: `[B, *state]` (diagonal) or `[B, M]` Brownian increments (or any tensor of
                that shape, such as $\\Delta W^2 - h$ for Milstein's correction).

        Returns:
            `[B, *state]` (`[B, D]` for matrix-valued noise).

        Raises:
            InvalidInputError: the shapes of `g_value` and `dw` do not fit together.
        """
        if self.noise_type == NoiseType.DIAGONAL:
            if g_value.shape != dw.shape:
                raise InvalidInputError(
                    f"diagonal noise needs `g` output and Brownian increment of one shape; "
                    f"got {list(g_value.shape)} and {list(dw.shape)}"
                )
            return g_value * dw
        if g_value.ndim != 3 or dw.shape != (g_value.shape[0], g_value.shape[2]):
            raise InvalidInputError(
                f"{self.noise_type} needs `g` output [B, D, M] and Brownian increment [B, M]; "
                f"got {list(g_value.shape)} and {list(dw.shape)}"
            )
        if self.noise_type == NoiseType.SCALAR:
            return g_value[..., 0] * dw
        return torch.einsum("bdm,bm->bd", g_value, dw)

    def extra_repr(self) -> str:
        name = "" if isinstance(self.g, nn.Module) else f"g={getattr(self.g, '__name__', repr(self.g))}, "
        return f"{name}noise_type={self.noise_type.name}, sde_type={self.sde_type.name}"

"""The linear time-invariant term $\\dot x = A x + B u(t)$ with output $y = C x + D u$."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .._checks import describe
from ..errors import InvalidInputError
from .base import AbstractDriftTerm, path_jump_times


class LinearTerm(AbstractDriftTerm):
    """Linear state-space term $\\dot x = A x + B u(t)$, one single-input system per feature.

    Feature $h \\in \\{1, \\dots, H\\}$ has the state $x_h \\in \\mathbb{R}^N$ and is driven by channel $h$
    of the input path: $\\dot x_h = A_h x_h + B_h u_h(t)$, with $A$, $B$ shared by all features or
    given per feature. The optional readout is $y_h = C_h x_h + D_h u_h$ with $M$ outputs per
    feature (`output`). This is the continuous-time system of linear state-space layers (LSSL,
    S4, HOPE's realization): solve it with any Runge-Kutta solver through an interpolated input,
    or exactly for piecewise-constant input with `neuralct.solvers.linear.ZOH`.

    Tensors that are `nn.Parameter`s are registered as parameters (trainable); others as buffers,
    so `.to(...)` moves them and `solve` checks their dtype against the state's.

    Args:
        a: `[N, N]` state matrix shared by every feature, or `[H, N, N]` one per feature.
        b: `[N]` input vector shared by every feature, or `[H, N]`.
        path: the input $u$ with H channels: `evaluate(t)` takes `[B]` times and returns `[B, H]`
            (e.g. `PiecewiseConstantPath`, `LinearPath`, `CubicPath`). Its `jump_times()`, if any,
            are the term's, so solvers land on its knots.
        c: `[M, N]` or `[H, M, N]` output matrix, or `None` (no readout).
        d: `[M]` or `[H, M]` feedthrough, or `None` for $D = 0$.

    Raises:
        InvalidInputError: a matrix of the wrong shape, or feature counts H that disagree
            between `a`, `b`, `c`, `d` and the path's channels.

    Reference: Gu et al., "Combining Recurrent, Convolutional, and Continuous-time Models with
    Linear State-Space Layers", NeurIPS 2021.

    Example:
        >>> a, b = -torch.eye(4), torch.ones(4)
        >>> path = PiecewiseConstantPath(torch.randn(2, 10, 3))
        >>> term = LinearTerm(a, b, path)  # state [2, 3, 4]: 3 features, N = 4
    """

    def __init__(self, a: Tensor, b: Tensor, path: Any, c: Tensor | None = None, d: Tensor | None = None):
        super().__init__()
        if not callable(getattr(path, "evaluate", None)):
            raise InvalidInputError(f"`path` must have an evaluate(t) method; got {describe(path)}")
        size = _check_matrix("a", a, 2, None)
        _check_matrix("b", b, 1, size)
        matrices = [("a", a, 2), ("b", b, 1)]
        if c is not None:
            outputs = _check_matrix("c", c, 2, size, square=False)
            matrices.append(("c", c, 2))
            if d is not None:
                _check_matrix("d", d, 1, outputs)
                matrices.append(("d", d, 1))
        elif d is not None:
            raise InvalidInputError("`d` needs an output matrix `c`; got c=None")
        features = _features(matrices)
        channels = getattr(path, "channels", None)
        if isinstance(channels, int) and features is not None and channels != features[1]:
            raise InvalidInputError(
                f"`path` must have H = {features[1]} channels, one per feature of `{features[0]}`; got {channels}"
            )
        self.path = path
        for name, value in (("a", a), ("b", b), ("c", c), ("d", d)):
            if isinstance(value, nn.Parameter) or value is None:
                setattr(self, name, value)
            else:
                self.register_buffer(name, value)

    @property
    def state_size(self) -> int:
        """N, the state size of each feature."""
        return self.a.shape[-1]

    @property
    def features(self) -> int | None:
        """H, the number of features (input channels), or `None` when nothing fixes it."""
        channels = getattr(self.path, "channels", None)
        for matrix, ndim in ((self.a, 3), (self.b, 2), (self.c, 3), (self.d, 2)):
            if matrix is not None and matrix.ndim == ndim:
                return matrix.shape[0]
        return channels if isinstance(channels, int) else None

    def input(self, t: Tensor) -> Tensor:
        """$u(t)$: `t` `[B]` -> `[B, H]` from the path."""
        return self.path.evaluate(t)

    def drift(self, x: Tensor, u: Tensor) -> Tensor:
        """$A x + B u$ for a given input: `x` `[B, H, N]`, `u` `[B, H]` -> `[B, H, N]`.

        Raises:
            InvalidInputError: `x` is not `[B, H, N]` or `u` not `[B, H]`.
        """
        self.check_state(x, u)
        ax = x @ self.a.mT if self.a.ndim == 2 else torch.einsum("hnm,bhm->bhn", self.a, x)
        return ax + self.b * u.to(x.dtype).unsqueeze(-1)

    def vector_field(self, t: Tensor, y: Tensor, args: Any) -> Tensor:
        """$A x + B u(t)$: `t` `[B]`, state `y` `[B, H, N]` -> `[B, H, N]`."""
        return self.drift(y, self.input(t))

    def output(self, x: Tensor, u: Tensor | None = None) -> Tensor:
        """Readout $y = C x + D u$ per feature.

        Args:
            x: `[..., H, N]` states (e.g. `[B, H, N]`, or `[B, K, H, N]` saved by a solve).
            u: `[..., H]` inputs at the same times; needed only when `d` was given.

        Returns:
            `[..., H, M]` outputs.

        Raises:
            InvalidInputError: no `c` was given, `u` is missing while `d` was given, or the shapes disagree.
        """
        if self.c is None:
            raise InvalidInputError("`output` needs the output matrix `c`; this LinearTerm was built with c=None")
        if x.ndim < 2 or x.shape[-1] != self.state_size:
            raise InvalidInputError(f"`x` must be [..., H, N] with N = {self.state_size}; got {tuple(x.shape)}")
        y = x @ self.c.mT if self.c.ndim == 2 else torch.einsum("hmn,...hn->...hm", self.c, x)
        if self.d is None:
            return y
        if u is None or u.shape != x.shape[:-1]:
            got = "None" if u is None else tuple(u.shape)
            raise InvalidInputError(f"`u` must be [..., H] = {tuple(x.shape[:-1])} when `d` is given; got {got}")
        return y + self.d * u.to(y.dtype).unsqueeze(-1)

    def check_state(self, x: Tensor, u: Tensor) -> None:
        """Raise `InvalidInputError` unless `x` is `[B, H, N]` and `u` is `[B, H]` for this term."""
        features = self.features
        if x.ndim != 3 or x.shape[-1] != self.state_size or (features is not None and x.shape[1] != features):
            expected = f"[B, {'H' if features is None else features}, {self.state_size}]"
            raise InvalidInputError(
                f"the state `y0` of a LinearTerm must be {expected} ([B, H, N]); got {tuple(x.shape)}"
            )
        if u.shape != x.shape[:2]:
            raise InvalidInputError(
                f"`path.evaluate(t)` must return [B, H] = {tuple(x.shape[:2])} for a state {tuple(x.shape)}; "
                f"got {tuple(u.shape)}"
            )

    def jump_times(self, ts: Tensor) -> Tensor | None:
        """The path's knots where it is not smooth, when it declares them by a `jump_times()` method
        (see `AbstractTerm.jump_times`)."""
        return path_jump_times(self.path)


def _check_matrix(name: str, value: object, ndim: int, size: int | None, square: bool = True) -> int:
    """Check `value` is a floating `[..., size]` tensor with `ndim` or `ndim + 1` dims (the extra
    one leading, per feature); for a square `[..., N, N]` matrix return N, else the row count."""
    if not isinstance(value, Tensor) or not value.is_floating_point() or value.ndim not in (ndim, ndim + 1):
        got = f"shape {tuple(value.shape)}, {value.dtype}" if isinstance(value, Tensor) else type(value).__name__
        raise InvalidInputError(f"`{name}` must be a floating tensor with {ndim} or {ndim + 1} dims; got {got}")
    expected = {("a", 2): "[N, N] or [H, N, N]", ("b", 1): "[N] or [H, N]", ("c", 2): "[M, N] or [H, M, N]"}
    shape = expected.get((name, ndim), "[M] or [H, M]")
    if ndim == 2 and square and value.shape[-1] != value.shape[-2]:
        raise InvalidInputError(f"`{name}` must be square, {shape}; got {tuple(value.shape)}")
    if size is not None and value.shape[-1] != size:
        raise InvalidInputError(f"`{name}` must be {shape} with last dim {size}; got {tuple(value.shape)}")
    return value.shape[-1] if ndim == 1 or square else value.shape[-2]


def _features(matrices: list[tuple[str, Tensor, int]]) -> tuple[str, int] | None:
    """The first per-feature matrix's `(name, H)`; raise when two per-feature matrices disagree on H."""
    found: tuple[str, int] | None = None
    for name, value, ndim in matrices:
        if value.ndim == ndim + 1:
            if found is not None and value.shape[0] != found[1]:
                raise InvalidInputError(
                    f"`{name}` has H = {value.shape[0]} features but `{found[0]}` has {found[1]}; "
                    f"got {name} of shape {tuple(value.shape)}"
                )
            found = found or (name, value.shape[0])
    return found


__all__ = ["LinearTerm"]

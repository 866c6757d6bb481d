"""Input checks shared by `solve` and friends; each raises an error naming the argument."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ._checks import check_int, check_number, describe, invalid
from .errors import IncompatibleTermError, InvalidInputError


def check_y0(y0: Any) -> Tensor:
    """`y0` must be a finite floating tensor `[B, *state]` with B >= 1."""
    y0 = check_tensor("y0", y0, floating=True)
    if y0.ndim < 2 or y0.numel() == 0:
        raise InvalidInputError(
            f"`y0` must have shape [B, *state] with B >= 1 and a non-empty state; got {tuple(y0.shape)}"
        )
    check_finite("y0", y0)
    return y0


def check_times(t: Any, batch: int, y0: Tensor) -> tuple[Tensor, Tensor]:
    """Broadcast `t` (`[K]` or `[B, K]`) to `[B, K]` and find each row's direction `[B]`.

    Rows must be strictly monotonic (increasing or decreasing), finite, on `y0`'s device,
    and in a dtype at least as precise as `y0`'s.
    """
    t = check_tensor("t", t, floating=True)
    if t.device != y0.device:
        raise InvalidInputError(f"`t` is on {t.device} but `y0` is on {y0.device}; put both on one device")
    if torch.finfo(t.dtype).bits < torch.finfo(y0.dtype).bits:
        raise InvalidInputError(
            f"`t` has dtype {t.dtype}, less precise than `y0` ({y0.dtype}); times need at least the state's precision"
        )
    shape = tuple(t.shape)
    if t.ndim == 1:
        t = t.expand(batch, -1)
    if t.ndim != 2 or t.shape[0] != batch or t.shape[1] == 0:
        raise InvalidInputError(f"`t` must have shape [K] or [B, K] with B = {batch} and K >= 1; got {shape}")
    check_finite("t", t)
    direction = torch.ones(batch, dtype=t.dtype, device=t.device)
    if t.shape[1] == 1:
        return t, direction
    steps = t.diff(dim=1)
    direction = torch.sign(steps[:, 0])
    wrong = steps * direction[:, None] <= 0
    if bool(wrong.any()):
        b, k = (int(i) for i in wrong.nonzero()[0])
        order = "increasing" if direction[b] > 0 else "decreasing"
        raise InvalidInputError(
            f"`t` must be strictly monotonic along dim 1; sample {b} is {order} but has "
            f"t[{b}, {k + 1}] = {float(t[b, k + 1]):.6g} after t[{b}, {k}] = {float(t[b, k]):.6g}"
        )
    return t, direction


def check_lengths(lengths: Any, ts: Tensor) -> Tensor | None:
    """`lengths` `None`, or an integer tensor `[B]` on `ts`'s device with `1 <= lengths <= K`
    for save times `ts` `[B, K]`."""
    if lengths is None:
        return None
    batch, num_saves = ts.shape
    integer = isinstance(lengths, Tensor) and not (lengths.is_floating_point() or lengths.is_complex())
    if not integer or lengths.shape != (batch,):
        raise InvalidInputError(
            f"`lengths` must be None or an integer tensor [B] with B = {batch}; got {describe(lengths)}"
        )
    if lengths.device != ts.device:
        raise InvalidInputError(f"`lengths` is on {lengths.device} but `t` is on {ts.device}; put both on one device")
    wrong = (lengths < 1) | (lengths > num_saves)
    if bool(wrong.any()):
        b = int(wrong.nonzero()[0])
        raise InvalidInputError(
            f"`lengths` must lie in [1, K] with K = {num_saves} save times; got lengths[{b}] = {int(lengths[b])}"
        )
    return lengths.long()


def check_term_tensors(term: torch.nn.Module, y0: Tensor) -> None:
    """Floating parameters and buffers of the term must share `y0`'s dtype and device."""
    for name, tensor in list(term.named_parameters()) + list(term.named_buffers()):
        if not tensor.is_floating_point():
            continue
        if tensor.device != y0.device:
            raise IncompatibleTermError(f"term tensor `{name}` is on {tensor.device} but `y0` is on {y0.device}")
        if tensor.dtype != y0.dtype:
            raise IncompatibleTermError(
                f"term tensor `{name}` has dtype {tensor.dtype} but `y0` has {y0.dtype}; "
                f"convert one of them (e.g. term.to({y0.dtype}))"
            )


def check_step_options(max_steps: Any, dt0: Any) -> None:
    """`max_steps` a positive int; `dt0` `None` or a positive finite number."""
    check_int("max_steps", max_steps)
    check_number("dt0", dt0, 0.0, open_low=True, optional=True)


def check_field_output(term: object, out: Any, like: Tensor, shape: tuple[int, ...] | None = None) -> Tensor:
    """A vector field's value `out` must be a tensor of `shape` (default `like`'s) with `like`'s
    dtype and device; the error names the term and what came instead.

    Args:
        term: the term whose field produced `out` (named in the error).
        out: what the field returned.
        like: `[B, *state]` the state it was evaluated at.
        shape: the expected shape, when it is not `like`'s (a control term's matrix field).

    Returns:
        `out`, unchanged.

    Raises:
        IncompatibleTermError: `out` is not a tensor, or its shape, dtype or device differ.
    """
    expected = tuple(like.shape) if shape is None else tuple(shape)
    if (
        isinstance(out, Tensor)
        and tuple(out.shape) == expected
        and out.dtype == like.dtype
        and out.device == like.device
    ):
        return out
    raise IncompatibleTermError(
        f"the vector field of {type(term).__name__} must return a tensor of shape {expected}, dtype "
        f"{like.dtype} on {like.device} (those of the state y); got {describe(out)}"
    )


def check_tensor(
    name: str,
    value: object,
    *,
    ndim: int | None = None,
    shape: str | None = None,
    floating: bool = False,
    finite: bool = False,
) -> Tensor:
    """`value` unchanged; raise unless it is a tensor with the asked-for rank, dtype kind and values.

    Args:
        name: the argument's name, shown in the error.
        value: what was passed.
        ndim: the required number of dimensions, or `None` for any.
        shape: how the expected shape reads in the message (e.g. `"[B, T, C]"`).
        floating: require a floating-point dtype.
        finite: require no NaN or infinity (the message points at the first bad entry).

    Raises:
        InvalidInputError: `value` is not a tensor, or has the wrong rank, dtype or values.
    """
    kind = "a floating tensor" if floating else "a tensor"
    expected = f"{kind} {shape}" if shape else kind
    if not isinstance(value, Tensor) or (ndim is not None and value.ndim != ndim):
        raise invalid(name, expected, value)
    if floating and not value.is_floating_point():
        raise invalid(name, expected, value)
    if finite:
        check_finite(name, value)
    return value


def check_finite(name: str, value: Tensor) -> None:
    """Raise unless the tensor `value` (any shape) holds no NaN or infinity; point at the first bad entry."""
    if bool(torch.isfinite(value).all()):
        return
    index = tuple(int(i) for i in (~torch.isfinite(value)).nonzero()[0])
    raise InvalidInputError(f"`{name}` must be finite; {name}{list(index)} = {float(value[index])}")

"""Input checks shared by `solve` and friends; each raises an error naming the argument."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .errors import IncompatibleTermError, InvalidInputError


def check_tensor(name: str, value: Any) -> Tensor:
    """`value` must be a floating-point tensor."""
    if not isinstance(value, Tensor):
        raise InvalidInputError(f"`{name}` must be a torch.Tensor; got {type(value).__name__}")
    if not value.is_floating_point():
        raise InvalidInputError(f"`{name}` must have a floating-point dtype; got {value.dtype}")
    return value


def check_finite(name: str, value: Tensor) -> None:
    """`value` must hold no NaN or infinity; the message points at the first bad entry."""
    if bool(torch.isfinite(value).all()):
        return
    index = tuple(int(i) for i in (~torch.isfinite(value)).nonzero()[0])
    raise InvalidInputError(f"`{name}` must be finite; {name}{list(index)} = {float(value[index])}")


def check_y0(y0: Any) -> Tensor:
    """`y0` must be a finite floating tensor `[B, *state]` with B >= 1."""
    y0 = check_tensor("y0", y0)
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
    t = check_tensor("t", t)
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


def check_options(max_steps: Any, dt0: Any) -> None:
    """`max_steps` a positive int; `dt0` `None` or a positive finite number."""
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps <= 0:
        raise InvalidInputError(f"`max_steps` must be a positive int; got {max_steps!r}")
    if dt0 is not None and not (isinstance(dt0, (int, float)) and 0 < dt0 < float("inf")):
        raise InvalidInputError(f"`dt0` must be None or a positive finite number; got {dt0!r}")

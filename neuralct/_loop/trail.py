"""`SaveAt(steps=True)`: every sample's start and accepted steps, padded to one length."""

from __future__ import annotations

import torch
from torch import Tensor

from .state import Attempt, Visit


def first_visit(t0: Tensor, y0: Tensor) -> tuple[Visit, ...]:
    """The trail at the start: every sample at `t0` `[B]` with `y0` `[B, *state]`."""
    return (Visit(t=t0, y=y0, accepted=torch.ones(t0.shape, dtype=torch.bool, device=t0.device)),)


def extend(trail: tuple[Visit, ...], step: Attempt) -> tuple[Visit, ...]:
    """`trail` with where `step` left each sample (kept where it was accepted)."""
    return trail + (Visit(t=step.t, y=step.y, accepted=step.accept),)


def trail_outputs(trail: tuple[Visit, ...]) -> tuple[Tensor, Tensor, Tensor]:
    """`(ts [B, N], ys [B, N, *state], mask [B, N])`: each sample's start and accepted steps in
    order, N one more than the most steps a sample accepted. A sample's columns past its own
    last step repeat that step (a gather, so their gradient reaches it) and are off in `mask`."""
    t, y, accepted = (torch.stack(parts, dim=1) for parts in zip(*trail))
    reached = torch.cumsum(accepted, dim=1)  # [B, S] outputs written up to each iteration
    count = reached[:, -1]
    outputs = torch.arange(1, int(count.max()) + 1, device=t.device)
    # The iteration that wrote output j (the first where `reached` is j + 1), or the last output.
    wanted = torch.minimum(outputs[None], count[:, None]).contiguous()
    column = torch.searchsorted(reached, wanted)
    ys = y.gather(1, column.reshape(column.shape + (1,) * (y.ndim - 2)).expand(-1, -1, *y.shape[2:]))
    return t.gather(1, column), ys, outputs[None] <= count[:, None]

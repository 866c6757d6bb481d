"""Counters: per-sample evaluations, steps and accepted steps, added up in batches."""

from __future__ import annotations

import torch
from torch import Tensor

from .state import Counters, Tally

# Loop iterations whose (running, accepted, evaluations) are tallied before they are added to
# the per-sample counters in one batch.
COUNT_WINDOW = 32


def first_counters(evals: int | Tensor, zeros: Tensor) -> Counters:
    """Counters before the first step: `evals` evaluations spent by each sample at the start
    (an int for every sample or `[B]`; `zeros` `[B]` integer, shared: the loop never changes a
    tensor in place)."""
    return Counters(
        vf_evals=zeros + evals,
        steps=zeros,
        accepted=torch.zeros_like(zeros),  # not shared with `steps`: both can reach the user
        tally=(),
    )


def count(counters: Counters, tally: Tally, jumped: Tensor | None, jump_evals: int | Tensor) -> Counters:
    """`counters` with one more loop iteration tallied, and `jump_evals` evaluations (an int or
    `[B]`) for each sample in `jumped` `[B]` (restarted past a jump time; `None`: none) added at once."""
    entries = counters.tally + (tally,)
    counters = Counters(vf_evals=counters.vf_evals, steps=counters.steps, accepted=counters.accepted, tally=entries)
    if len(entries) >= COUNT_WINDOW:
        counters = settle_counters(counters)
    if jumped is None:
        return counters
    vf_evals = counters.vf_evals + jumped * jump_evals
    return Counters(vf_evals=vf_evals, steps=counters.steps, accepted=counters.accepted, tally=counters.tally)


def settle_counters(counters: Counters) -> Counters:
    """`counters` with the iterations in its tally added: `[B]` totals, an empty tally."""
    if not counters.tally:
        return counters
    running, accepts, evals = zip(*counters.tally)
    running = torch.stack(running)
    taken = running.sum(0)
    vf_evals, steps = counters.vf_evals, counters.steps
    if all(isinstance(e, int) for e in evals) and len(set(evals)) == 1:
        vf_evals = torch.add(vf_evals, taken, alpha=evals[0])
    else:  # per-iteration counts, some of them per sample (`[B]`, e.g. Newton iterations)
        per_sample = torch.stack(
            [torch.as_tensor(e, dtype=steps.dtype, device=steps.device).expand_as(steps) for e in evals]
        )
        vf_evals = vf_evals + (running * per_sample).sum(0)
    accepted = counters.accepted + torch.stack(accepts).sum(0)
    return Counters(vf_evals=vf_evals, steps=steps + taken, accepted=accepted, tally=())

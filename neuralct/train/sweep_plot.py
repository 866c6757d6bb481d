"""The figure of a sweep's summary (`summary.png`): the score per point with its spread over the
seeds, and below it what each point cost (training seconds per run, evaluations per test sample).

Points are labelled by their values, with the grid keys they belong to on the x axis; beyond a
few points the labels are written on one line each and turned, so that dozens stay readable.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .plots import new_figure

_FEW = 6  # up to this many points, each label stacks its values on lines of their own


def plot_summary(rows: Sequence[dict], keys: Sequence[str], path: Path) -> None:
    """Draw the summary rows of `neuralct.train.sweep.sweep` (one per point) into `path`."""
    x = list(range(len(rows)))
    few = len(rows) <= _FEW
    labels = [_label(row, keys, few) for row in rows]
    width = min(max(6.0, 0.45 * len(rows) + 2.5), 30.0)
    figure, (score_axis, cost_axis) = new_figure(2, 1, sharex=True, figsize=(width, 6.5))
    metrics = sorted({row["metric"].replace("_", " ") for row in rows})
    score_axis.errorbar(x, [r["mean"] for r in rows], yerr=[r["std"] for r in rows], fmt="o", capsize=4)
    seeds = sorted({row["seeds"] for row in rows})
    score_axis.set(
        ylabel=" or ".join(metrics),
        title=f"test score per point (mean ± std over {'/'.join(map(str, seeds))} seeds) and its cost",
    )
    score_axis.grid(alpha=0.3)
    seconds, evals = [r["seconds"] for r in rows], [r["vf_evals"] for r in rows]
    bars = cost_axis.bar(x, seconds, color="C0", alpha=0.7, label="training seconds per run")
    cost_axis.set_ylabel("training seconds per run", color="C0")
    evals_axis = cost_axis.twinx()
    (marks,) = evals_axis.plot(x, evals, "s", color="C1", label="evaluations per test sample")
    evals_axis.set_ylabel("evaluations per test sample", color="C1")
    # headroom above both series for the legend, which would otherwise cover the tallest bars
    cost_axis.set_ylim(0, 1.3 * max(seconds) or 1.0)
    evals_axis.set_ylim(0, 1.3 * max(evals) or 1.0)
    cost_axis.legend(handles=[bars, marks], loc="upper left", ncol=2, fontsize=8)
    cost_axis.set_xlabel("point: " + ", ".join(keys) if keys and not few else "point")
    cost_axis.set_xticks(x)
    cost_axis.set_xticklabels(labels, fontsize=8, rotation=0 if few else 60, ha="center" if few else "right")
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def _label(row: dict, keys: Sequence[str], few: bool) -> str:
    """`lr=0.001` and `hidden=32` on lines of their own for a few points; `0.001, 32` beyond (the
    keys are then on the x axis)."""
    if not keys:
        return "base config"
    if few:
        return "\n".join(f"{key}={row[key]}" for key in keys)
    return ", ".join(str(row[key]) for key in keys)

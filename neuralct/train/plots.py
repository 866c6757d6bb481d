"""Figures of a run folder, drawn from its `metrics.jsonl` (matplotlib, no display needed).

- `learning_curves.png`: training and validation loss, and validation accuracy for classification;
- `vf_evals.png`: vector-field evaluations per sample of the training forward passes, per epoch
  (how the cost of the numerics changes as the model trains).
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_run(run_dir: Path | str) -> list[Path]:
    """Draw the figures of `run_dir` from its metrics; returns the PNG paths written."""
    run_dir = Path(run_dir)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [_learning_curves(rows, run_dir / "learning_curves.png"), _evaluations(rows, run_dir / "vf_evals.png")]


def _learning_curves(rows: list[dict], path: Path) -> Path:
    epochs = [row["epoch"] for row in rows]
    classification = rows[0]["val_accuracy"] is not None
    figure, axes = plt.subplots(1, 2 if classification else 1, figsize=(9 if classification else 5, 3.5), squeeze=False)
    axes[0, 0].plot(epochs, [row["train_loss"] for row in rows], label="train")
    axes[0, 0].plot(epochs, [row["val_loss"] for row in rows], label="validation")
    axes[0, 0].set(xlabel="epoch", ylabel="loss", yscale="log")
    axes[0, 0].legend()
    if classification:
        axes[0, 1].plot(epochs, [row["train_accuracy"] for row in rows], label="train")
        axes[0, 1].plot(epochs, [row["val_accuracy"] for row in rows], label="validation")
        axes[0, 1].set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1))
        axes[0, 1].legend()
    return _save(figure, path)


def _evaluations(rows: list[dict], path: Path) -> Path:
    figure, axis = plt.subplots(figsize=(5, 3.5))
    axis.plot([row["epoch"] for row in rows], [row["vf_evals"] for row in rows], marker=".")
    axis.set(xlabel="epoch", ylabel="evaluations per sample", ylim=(0, None))
    return _save(figure, path)


def _save(figure: plt.Figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path

"""The run figures (`neuralct.train.plots`): titles, labels and ticks a reader can use."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pytest
import torch

import neuralct.train.plots as plots
from neuralct.data.series import IrregularBatch
from neuralct.errors import InvalidInputError
from neuralct.models.baselines.gru_dt import GRUDelta
from neuralct.stability.plots import plot_stability_regions


def _labels(axis) -> list[str]:
    ticks = axis.get_majorticklabels() + axis.get_minorticklabels()
    return [tick.get_text() for tick in ticks if tick.get_text()]


def test_a_log_axis_within_a_decade_is_labelled_with_plain_numbers() -> None:
    figure, axes = plt.subplots()
    axes.plot([1, 2, 3], [0.57, 0.66, 0.8])
    axes.set_yscale("log")
    plots.readable_log_axis(axes)
    figure.canvas.draw()
    labels = _labels(axes.yaxis)
    plt.close(figure)
    # Matplotlib's default writes these as $\mathdefault{6\times10^{-1}}$.
    assert {"0.6", "0.7", "0.8"} <= set(labels) and not any("times" in label for label in labels)


def test_run_titles_name_the_model_the_data_and_the_missing_rate() -> None:
    assert plots.run_title({"model": "ncde", "dataset": "spirals", "missing": 0.3}) == (
        "ncde on spirals, 30% of observations dropped"
    )
    user = {"model": "ltc", "dataset": None, "data": "/home/me/gestures.csv", "missing": 0.0}
    assert plots.run_title(user) == "ltc on gestures.csv, no observation dropped"


def _batch(classes: int) -> IrregularBatch:
    generator = torch.Generator().manual_seed(0)
    times = torch.arange(6, dtype=torch.float32).expand(4, 6).contiguous()
    values = torch.randn(4, 6, 2, generator=generator)
    mask = torch.ones(4, 6, 2, dtype=torch.bool)
    return IrregularBatch(times, values, mask, torch.full((4,), 6), torch.arange(4) % classes)


def test_predictions_name_the_classes_and_channels_they_are_given(tmp_path: Path, monkeypatch) -> None:
    figures = []
    monkeypatch.setattr(plots, "_save", lambda figure, path, title: figures.append((figure, title)) or path)
    model = GRUDelta(channels=2, hidden=4, outputs=3)
    plots.plot_predictions(
        model, _batch(3), tmp_path / "p.png", classes=["walk", "run", "52"], channels=["x", "y"], title="t"
    )
    figure, title = figures[0]
    titles = " ".join(axes.get_title() for axes in figure.axes)
    assert title == "t" and "true walk" in titles and "true run" in titles and "true 52" in titles
    assert [text.get_text() for text in figure.legends[0].get_texts()] == ["x", "y"]
    plt.close(figure)
    with pytest.raises(InvalidInputError, match="`classes` must name each of the 3 classes"):
        plots.plot_predictions(model, _batch(3), tmp_path / "p.png", classes=["walk", "run"])
    with pytest.raises(InvalidInputError, match="`channels` must name each of the 2 channels"):
        plots.plot_predictions(model, _batch(3), tmp_path / "p.png", channels="xy")


def test_eigenvalues_crowded_near_the_origin_get_a_zoomed_panel_and_an_a_stable_region_is_hatched() -> None:
    crowded = plot_stability_regions(["rk4", "implicit_euler"], eigenvalues=[-0.01, -0.02 + 0.01j], dt=1.0)
    assert len(crowded.axes) == 2 and crowded.axes[1].get_xlim()[1] < 0.05
    labels = [text.get_text() for text in crowded.axes[0].get_legend().get_texts()]
    assert labels[:2] == ["RK4: 2/2 inside", "ImplicitEuler (unstable where hatched): 2/2 inside"]
    spread = plot_stability_regions(["rk4"], eigenvalues=[-2.0, -1 + 2j], dt=1.0)
    assert len(spread.axes) == 1

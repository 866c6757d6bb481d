"""The control interpolations of `neuralct.data.control_path` on one irregular series.

One series with two channels, observed at uneven times, with values missing in each channel.
Each panel draws one interpolation: observed values as dots, the filled value at a missing one
as a cross. The rectilinear path is drawn against its own time channel, so its steps show: time
moves first, then the values. The last panel adds an observation a hair after another one: the
Hermite cubic with plain backward differences overshoots by orders of magnitude next to it, the
default, with limited slopes, stays within the data.

Run `python examples/interpolations.py`; the figure `interpolations.png` is written to
`examples/output/` unless `--out` says otherwise (the docs use `docs/images/`).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from neuralct.data.controls import KINDS, control_path  # noqa: E402
from neuralct.data.series import IrregularBatch, Series, collate  # noqa: E402

DTYPE = torch.float64
TITLES = {
    "linear": "linear (linear fill)",
    "rectilinear": "rectilinear (forward fill, online)",
    "hermite": "Hermite cubic, backward differences (forward fill)",
    "natural": "natural cubic spline (linear fill, not causal)",
    "limited_hermite": "Hermite cubic, limited slopes (the default)",
}
COLOURS = ("tab:blue", "tab:orange")


def signal(t: torch.Tensor) -> torch.Tensor:
    """`[T, 2]` the smooth curves the observations are taken from."""
    return torch.stack([torch.sin(1.3 * t), 0.8 * torch.cos(0.7 * t) - 0.3], dim=-1)


def example_batch() -> IrregularBatch:
    """A batch of one series: 11 uneven times in [0, 6], each channel missing at three of them."""
    times = torch.tensor([0.0, 0.35, 0.9, 1.2, 2.1, 2.6, 3.4, 3.7, 4.6, 5.3, 6.0], dtype=DTYPE)
    values = signal(times)
    values[[2, 6, 7], 0] = math.nan
    values[[1, 4, 9], 1] = math.nan
    return collate([Series(times, values)])


def draw(axis: plt.Axes, batch: IrregularBatch, kind: str) -> float:
    """Draw one interpolation; return its largest distance from the observed values."""
    path = control_path(batch, kind)
    fine = torch.linspace(0.0, 6.0, 601, dtype=DTYPE)
    curve = path.evaluate(fine[None])[0]  # [K, 1 + C]: time, then the channels
    knots = path.evaluate(batch.times)[0]
    mask = batch.mask[0]
    axis.plot(fine, signal(fine), color="0.8", linewidth=3, zorder=0)
    for c, colour in enumerate(COLOURS):
        axis.plot(curve[:, 0], curve[:, 1 + c], color=colour, linewidth=1.4, label=f"channel {c}")
        seen = mask[:, c]
        axis.plot(batch.times[0][seen], knots[seen, 1 + c], "o", color=colour, markersize=4)
        axis.plot(batch.times[0][~seen], knots[~seen, 1 + c], "x", color=colour, markersize=6)
    axis.set_title(TITLES[kind], fontsize=9)
    axis.tick_params(labelsize=8)
    return float((knots[:, 1:][mask] - batch.values[0][mask]).abs().max())


def close_pair_overshoot(axis: plt.Axes) -> dict[str, float]:
    """Draw channel 0 of the example with an observation 3e-5 after t = 2.1, under the plain and
    the limited Hermite cubic; return each path's largest |X| over the data's largest |x|."""
    batch = example_batch()
    times = torch.cat([batch.times[0, :5], batch.times[0, 4:5] + 3e-5, batch.times[0, 5:]])
    values = torch.cat([batch.with_nan()[0, :5], batch.with_nan()[0, 4:5] + 0.05, batch.with_nan()[0, 5:]])
    close = collate([Series(times, values)])
    fine = torch.linspace(0.0, 6.0, 6001, dtype=DTYPE)
    largest = float(close.values[0][close.mask[0]].abs().max())
    ratios = {}
    for kind, colour in (("hermite", "tab:red"), ("limited_hermite", "tab:blue")):
        curve = control_path(close, kind).evaluate(fine[None])[0, :, 1]
        ratios[kind] = float(curve.abs().max()) / largest
        axis.plot(fine, curve, color=colour, linewidth=1.2, label=f"{kind}: max |X| = {ratios[kind]:.3g} x data")
    axis.set_ylim(-3, 3)
    axis.set_title("channel 0 with a second observation 3e-5 after t = 2.1", fontsize=9)
    axis.legend(fontsize=7, loc="lower left")
    axis.tick_params(labelsize=8)
    return ratios


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "output")
    options = parser.parse_args(argv)
    options.out.mkdir(parents=True, exist_ok=True)
    batch = example_batch()
    figure, axes = plt.subplots(2, 3, figsize=(13, 5), sharex=True)
    errors = {kind: draw(axis, batch, kind) for kind, axis in zip(KINDS, axes.flat)}
    errors.update({f"overshoot {kind}": ratio for kind, ratio in close_pair_overshoot(axes[1, 2]).items()})
    axes[0, 0].legend(fontsize=8, loc="lower left")
    for axis in axes[1]:
        axis.set_xlabel("time", fontsize=9)
    figure.suptitle("dots: observed; crosses: missing, as filled; grey: the signal sampled", fontsize=9)
    figure.tight_layout()
    figure.savefig(options.out / "interpolations.png", dpi=100)
    plt.close(figure)
    print(f"wrote {options.out / 'interpolations.png'}")
    return errors


if __name__ == "__main__":
    main()

"""What every figure of the stability lab shares: where it is saved and the axes it is drawn into."""

from __future__ import annotations

from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..errors import InvalidInputError


def target(path: Path | str | None) -> Path | None:
    """`path` as a `Path`, checked to be a PNG or SVG file name (`None` saves nothing).

    Raises:
        InvalidInputError: a path that is neither `.png` nor `.svg`.
    """
    if path is None:
        return None
    path = Path(path)
    if path.suffix.lower() not in (".png", ".svg"):
        raise InvalidInputError(f"`path` must end in .png or .svg; got {str(path)!r}")
    return path


def new_axes(ax: Axes | None, size: tuple[float, float] = (6.5, 5.5)) -> tuple[Figure, Axes]:
    """`ax` and its figure, or a new figure of `size` inches with one axes."""
    if ax is not None:
        return ax.figure, ax
    figure = Figure(figsize=size, layout="constrained")
    return figure, figure.add_subplot()


def save(figure: Figure, path: Path) -> None:
    """Write `path` (PNG or SVG); an SVG gets a PNG beside it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path.with_suffix(".png"), dpi=150)
    if path.suffix.lower() == ".svg":
        figure.savefig(path)

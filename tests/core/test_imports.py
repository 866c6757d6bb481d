"""Importing neuralct has no side effects and stays light (fresh interpreters, so that nothing the
rest of the suite imported hides a load)."""

from __future__ import annotations

import subprocess
import sys


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def test_importing_neuralct_loads_no_peer_library_scipy_or_matplotlib() -> None:
    heavy = ("torchdiffeq", "torchsde", "torchcde", "torchode", "scipy", "matplotlib")
    code = f"import sys, neuralct; print(sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r}))"
    assert _run(code) == "[]"


def test_the_figure_modules_leave_the_users_matplotlib_backend_alone(tmp_path) -> None:
    # A notebook's backend must survive importing the stability lab and drawing a figure with it.
    code = (
        "import matplotlib; matplotlib.use('svg'); "
        "import neuralct.stability, neuralct.stability.plots, neuralct.train.plots, neuralct.train.sweep_plot; "
        "from neuralct.train.sweep_plot import plot_summary; from pathlib import Path; "
        "rows = [{'metric': 'test_accuracy', 'mean': 0.5, 'std': 0.1, 'seeds': 2, 'seconds': 1.0, 'vf_evals': 3.0, "
        "'lr': 0.1}]; "
        f"plot_summary(rows, ['lr'], Path({str(tmp_path / 'summary.png')!r})); "
        "print(matplotlib.get_backend())"
    )
    assert _run(code) == "svg"
    assert (tmp_path / "summary.png").stat().st_size > 1000

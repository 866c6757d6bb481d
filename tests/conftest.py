"""Shared test fixtures. Nothing here changes global state for the whole session."""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import settings

# Torch's first calls (and 2-core CI machines) are slow enough to trip Hypothesis' default
# 200 ms deadline at random; correctness, not speed, is what property tests check here.
# Hypothesis loads its own "ci" profile when it detects CI; elsewhere this one is the default.
settings.register_profile("neuralct", deadline=None)
if "HYPOTHESIS_PROFILE" in os.environ:
    settings.load_profile(os.environ["HYPOTHESIS_PROFILE"])
elif not os.environ.get("CI"):
    settings.load_profile("neuralct")


@pytest.fixture(autouse=True)
def _seed() -> None:
    """Every test starts from the same torch random state, whatever ran before it (or in which worker)."""
    torch.manual_seed(0)


@pytest.fixture
def float64():
    """Run one test with float64 as torch's default dtype; the previous default comes back afterwards."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield torch.float64
    finally:
        torch.set_default_dtype(previous)


@pytest.fixture
def no_plots(monkeypatch) -> None:
    """Runs that draw no figures of their own (tests of what else a run or a sweep writes)."""
    from neuralct.train import run as run_module

    monkeypatch.setattr(run_module, "plot_run", lambda run_dir: [])
    monkeypatch.setattr(run_module, "plot_predictions", lambda *args, **kwargs: None)

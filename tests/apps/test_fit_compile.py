"""`fit` with `compile=True` (`neuralct fit --compile`) trains every registered model whose
numerics compile (explicit Runge-Kutta, the LTC fused step, the method of steps) to the
metrics of the uncompiled run, and refuses, before training, a model whose numerics do not."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from neuralct.errors import InvalidInputError
from neuralct.train.config import FitConfig
from neuralct.train.run import fit

pytestmark = pytest.mark.skipif(
    shutil.which("g++") is None and shutil.which("clang++") is None,
    reason="torch.compile on CPU needs a C++ compiler",
)

TINY = {"dataset": "spirals", "hidden": 4, "epochs": 1, "batch_size": 16, "dataset_options": {"size": 24, "length": 6}}


@pytest.fixture(autouse=True)
def fresh_compile_cache():
    """Each fit compiles from nothing, so no test depends on another's graphs."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def fitted(tmp_path: Path, model: str, compile: bool) -> dict:
    """The test metrics of a 1-epoch fit of `model` on 24 short spirals, from seed 0."""
    torch.manual_seed(0)
    return fit(FitConfig(model=model, compile=compile, **TINY), tmp_path / f"{model}-{compile}")


# ltc's numerics (LTCFused, knot to knot) are the fast representative; the others compile
# larger steps (Tsit5 with its controller, the method of steps' pieces) for tens of seconds.
@pytest.mark.parametrize(
    "model", ["ltc", *(pytest.param(name, marks=pytest.mark.slow) for name in ("ncde", "ancde", "tau_gru", "ode_rnn"))]
)
def test_a_compiled_fit_trains_to_the_metrics_of_the_eager_fit(tmp_path: Path, model: str) -> None:
    eager = fitted(tmp_path, model, False)
    compiled = fitted(tmp_path, model, True)
    assert compiled["test_failed"] == eager["test_failed"] == 0
    # Fused float32 arithmetic rounds differently: an adaptive step (ncde, ancde: Tsit5) whose
    # error ratio is within rounding of 1 may be decided the other way, so evaluations and
    # the loss agree to that, not bit for bit.
    assert compiled["test_vf_evals"] == pytest.approx(eager["test_vf_evals"], rel=0.05)
    assert compiled["test_loss"] == pytest.approx(eager["test_loss"], rel=1e-3)
    assert compiled["test_accuracy"] == pytest.approx(eager["test_accuracy"], abs=0.05)


def test_a_model_whose_numerics_do_not_compile_is_refused_before_training(tmp_path: Path) -> None:
    """The noisy RNN trains on a BrownianPath, which a compiled step cannot query."""
    with pytest.raises(InvalidInputError, match="compile=True.*EulerMaruyama.*BrownianGrid only"):
        fitted(tmp_path, "noisy_rnn", True)
    assert not (tmp_path / "noisy_rnn-True" / "metrics.csv").exists()

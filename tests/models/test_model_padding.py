"""A sample's predictions and cost do not depend on the lengths of its batch mates.

Every registered model is run on a batch of series of different lengths and on each series
alone: in float64 with adaptive numerics the predictions agree to 1e-8 and every solve takes
the same number of vector-field evaluations (continuous models stop each sample at its own
last real time instead of integrating over the padding).
"""

from __future__ import annotations

import pytest
import torch

import neuralct as nct
from neuralct import registry
from neuralct.data import Series, collate
from neuralct.models import SolveOptions

F64 = torch.float64


def _series(length: int, generator: torch.Generator) -> Series:
    gaps = 0.05 + torch.rand(length, generator=generator, dtype=F64)
    values = torch.randn(length, 2, generator=generator, dtype=F64)
    values[torch.rand(length, 2, generator=generator) < 0.2] = float("nan")
    values[0] = torch.randn(2, generator=generator, dtype=F64)  # every channel seen at the start
    return Series(gaps.cumsum(0), values, target=torch.tensor(0))


def _adaptive(model: nct.models.AbstractSequenceModel) -> SolveOptions | None:
    """The model's numerics with an adaptive Runge-Kutta solver in place of its default one."""
    default = model.default_solve_options()
    if default is None:
        return None
    controller = nct.PIDController(rtol=1e-3, atol=1e-6)
    solver = nct.MethodOfSteps(nct.Tsit5()) if isinstance(default.solver, nct.MethodOfSteps) else nct.Tsit5()
    return SolveOptions(solver, controller)


@pytest.mark.parametrize("name", sorted(registry.names("model")))
def test_a_samples_prediction_and_cost_alone_equal_those_in_a_padded_batch(name):
    generator = torch.Generator().manual_seed(3)
    series = [_series(length, generator) for length in (4, 15, 22)]
    model = registry.model(name, channels=2, hidden=4, outputs=3).to(F64).eval()
    options = _adaptive(model)
    with torch.no_grad():
        together = model.run(collate(series), options)
        for b, one in enumerate(series):
            alone = model.run(collate([one]), options)
            torch.testing.assert_close(together.predictions[b], alone.predictions[0], rtol=0, atol=1e-8)
            assert int(together.stats.vf_evals[b]) == int(alone.stats.vf_evals[0]), name

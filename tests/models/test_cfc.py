"""CfC: every mode equals ncps's CfCCell with per-sample gaps; padding, gradients and named errors."""

from __future__ import annotations

import pytest
import torch
from ncps.torch import CfCCell as NcpsCfCCell

from neuralct.data.series import IrregularBatch
from neuralct.errors import InvalidInputError
from neuralct.models.cfc import CfC

DTYPE = torch.float64
MODES = ["default", "no_gate", "pure"]


def _batch(batch: int = 3, length: int = 6, channels: int = 2, lengths: list[int] | None = None) -> IrregularBatch:
    times = (0.1 + 2 * torch.rand(batch, length, dtype=DTYPE)).cumsum(dim=1)
    values = torch.randn(batch, length, channels, dtype=DTYPE)
    lengths_t = torch.tensor(lengths if lengths is not None else [length] * batch)
    return IrregularBatch.from_padded(times, values, lengths=lengths_t)


@pytest.mark.parametrize("layers", [0, 1, 2])
@pytest.mark.parametrize("mode", MODES)
def test_cfc_equals_ncps_cfc_cell_with_per_sample_gaps(mode: str, layers: int) -> None:
    batch = _batch(batch=4, length=7, channels=3)
    model = CfC(3, 5, 2, mode=mode, backbone_units=16, backbone_layers=layers).to(DTYPE)
    cell = NcpsCfCCell(3, 5, mode=mode, backbone_units=16, backbone_layers=layers).to(DTYPE)
    cell.load_state_dict(model.cell.state_dict())  # strict: the parameter names are ncps's
    # The cell API with the elapsed time shaped (B, 1): ncps's CfC wrapper mishandles per-sample timespans.
    elapsed = torch.cat([torch.ones(4, 1, dtype=DTYPE), batch.times.diff(dim=1)], dim=1)
    h = torch.zeros(4, 5, dtype=DTYPE)
    for k in range(7):
        h, _ = cell(batch.values[:, k], h, elapsed[:, k : k + 1])
    output = model.run(batch)
    torch.testing.assert_close(output.predictions, model.output(h), atol=1e-12, rtol=0)
    assert int(output.stats.vf_evals.sum()) == 0  # nothing is solved


def test_elapsed_time_changes_the_state() -> None:
    model = CfC(2, 4, 4, backbone_units=8).to(DTYPE)
    batch = _batch(batch=1, length=4)
    stretched = IrregularBatch.from_padded(3 * batch.times, batch.values)
    assert float((model(batch) - model(stretched)).detach().abs().max()) > 1e-3


def test_batch_with_per_sample_gaps_and_lengths_equals_each_sample_alone() -> None:
    batch = _batch(batch=3, length=6, lengths=[6, 2, 4])
    model = CfC(2, 5, 3, backbone_units=8).to(DTYPE)
    together = model(batch)
    for i in range(3):
        torch.testing.assert_close(together[i : i + 1], model(batch.select([i])), atol=1e-13, rtol=0)


def test_missing_channels_are_carried_forward() -> None:
    times = torch.tensor([[0.0, 1.0, 2.5]], dtype=DTYPE)
    values = torch.tensor([[[1.0, 2.0], [3.0, float("nan")], [float("nan"), -1.0]]], dtype=DTYPE)
    filled = torch.tensor([[[1.0, 2.0], [3.0, 2.0], [3.0, -1.0]]], dtype=DTYPE)
    model = CfC(2, 4, 1, backbone_units=8).to(DTYPE)
    torch.testing.assert_close(
        model(IrregularBatch.from_padded(times, values)), model(IrregularBatch.from_padded(times, filled))
    )


def test_cfc_has_no_solve_options_and_no_flow() -> None:
    model = CfC(2, 4, 1)
    assert model.default_solve_options() is None and model.flow is None


@pytest.mark.parametrize(
    "options, argument",
    [
        ({"channels": 0}, "channels"),
        ({"hidden": 2.5}, "hidden"),
        ({"outputs": -1}, "outputs"),
        ({"mode": "closed"}, "mode"),
        ({"backbone_units": 0}, "backbone_units"),
        ({"backbone_layers": -1}, "backbone_layers"),
        ({"backbone_activation": "sigmoid"}, "backbone_activation"),
        ({"backbone_dropout": 1.0}, "backbone_dropout"),
        ({"first_gap": 0.0}, "first_gap"),
    ],
)
def test_bad_arguments_raise_named_errors(options: dict, argument: str) -> None:
    arguments = {"channels": 2, "hidden": 4, "outputs": 1, **options}
    with pytest.raises(InvalidInputError, match=f"`{argument}`"):
        CfC(**arguments)

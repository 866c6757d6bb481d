"""The state-space models (s4d, lssl, hope, deep_ssm) as registered models of irregular series:
per-step gaps (the exact ZOH identity), padding and batch mates never read, scan == sequential
recurrence, convolution == recurrence, and the command line end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from neuralct import registry
from neuralct.cli import main
from neuralct.data import IrregularBatch, Series, collate
from neuralct.errors import InvalidInputError
from neuralct.models.ssm import s4d as s4d_module
from neuralct.models.ssm._common import lattice_cells
from neuralct.models.ssm.model import SSMModel, observation_gaps

LAYERS = ("s4d", "lssl", "hope")
SMALL = {"hidden": 8, "batch_size": 16, "epochs": 2}


def _model(layer: str, dtype: torch.dtype = torch.float64, **options) -> SSMModel:
    torch.manual_seed(0)
    model = SSMModel(2, 6, 3, layer=layer, state=4, dt_min=0.05, dt_max=0.5, **options)
    return model.to(dtype).eval()


def _series(times: list[float], values: list[list[float]], dtype: torch.dtype = torch.float64) -> Series:
    return Series(torch.tensor(times, dtype=dtype), torch.tensor(values, dtype=dtype))


def _irregular(dtype: torch.dtype = torch.float64, seed: int = 1) -> IrregularBatch:
    generator = torch.Generator().manual_seed(seed)
    series = []
    for length in (9, 5, 7):
        times = torch.cumsum(0.2 + torch.rand(length, generator=generator, dtype=dtype), 0)
        values = torch.randn(length, 2, generator=generator, dtype=dtype)
        values[1, 0] = float("nan")  # a missing channel
        series.append(Series(times, values))
    return collate(series)


def test_two_gaps_of_held_input_equal_one_gap_of_their_sum_under_zoh() -> None:
    # Observation k is held over the gap that ends at it: splitting the gap (2, 4] at 3 with the
    # value observed at 4 must leave the state at 4 and after it unchanged (ZOH is exact there).
    values = [[0.3, -1.0], [1.2, 0.4], [-0.7, 0.9], [0.5, 2.0], [1.1, -0.3]]
    split = values[:3] + [values[3]] + values[3:]
    previous = values[:3] + [values[2]] + values[3:]  # the wrong value: the one before the gap
    for layer, exact in (("s4d", True), ("lssl", False)):
        model = _model(layer, depth=1)
        for end in (4, 5):  # the shared times 4 and 5: each a prefix, read out at its last time
            one = model(collate([_series([0, 1, 2, 4, 5][:end], values[:end])]))
            two = model(collate([_series([0, 1, 2, 3, 4, 5][: end + 1], split[: end + 1])]))
            wrong = model(collate([_series([0, 1, 2, 3, 4, 5][: end + 1], previous[: end + 1])]))
            gap = float((one - two).abs().max().detach())
            assert gap < 1e-12 if exact else gap > 1e-8, (layer, end, gap)  # the bilinear rule is not exact
            assert float((one - wrong).abs().max().detach()) > 1e-4


def test_the_zoh_identity_holds_in_float32_to_1e_6() -> None:
    model = _model("s4d", torch.float32, depth=1)
    values = [[0.3, -1.0], [1.2, 0.4], [-0.7, 0.9], [0.5, 2.0]]
    one = model(collate([_series([0, 1, 2, 4], values, torch.float32)]))
    two = model(collate([_series([0, 1, 2, 3, 4], values[:3] + values[3:] * 2, torch.float32)]))
    assert float((one - two).abs().max().detach()) < 1e-6


@pytest.mark.parametrize("norm", ["layer", "batch"])
@pytest.mark.parametrize("layer", LAYERS)
def test_a_sample_output_does_not_depend_on_batch_mates_or_padding(layer: str, norm: str) -> None:
    model = _model(layer, norm=norm, readout="mean" if norm == "batch" else "last")
    batch = _irregular()
    together = model(batch)
    for b in range(batch.batch_size):
        alone = model(batch.select([b]))  # its own length: no padding, and (uniform or not) its own path
        torch.testing.assert_close(together[b : b + 1], alone, atol=1e-10, rtol=0)


@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.float32, 1e-5), (torch.float64, 1e-10)])
def test_scan_and_sequential_recurrence_agree_in_values_and_gradients(dtype: torch.dtype, tolerance: float) -> None:
    batch = _irregular(dtype)
    results = []
    for recurrence in ("scan", "sequential"):
        model = _model("s4d", dtype, recurrence=recurrence)
        output = model(batch)
        grads = torch.autograd.grad(output.square().sum(), list(model.parameters()))
        results.append((output, grads))
    (scan, scan_grads), (loop, loop_grads) = results
    torch.testing.assert_close(scan, loop, atol=tolerance, rtol=tolerance)
    for one, two in zip(scan_grads, loop_grads):
        torch.testing.assert_close(one, two, atol=tolerance, rtol=tolerance)
    assert max(float(g.abs().max()) for g in scan_grads) > 1e-3  # gradients that are there to compare


@pytest.mark.parametrize("spacings", [(0.5, 2.0, 1.0), (0.5, 0.5, 0.5)], ids=["own", "shared"])
@pytest.mark.parametrize("layer", LAYERS)
def test_the_convolution_on_uniform_grids_equals_the_per_step_recurrence(layer: str, spacings: tuple) -> None:
    # Each sample uniform, of unequal lengths: one kernel per sample, or one for all when they share it.
    generator = torch.Generator().manual_seed(2)
    series = [
        Series(spacing * torch.arange(length, dtype=torch.float64), torch.randn(length, 2, generator=generator))
        for spacing, length in zip(spacings, (40, 31, 12))
    ]
    batch = collate(series).to(dtype=torch.float64)
    model = _model(layer, readout="mean")
    u = torch.cat([batch.values, batch.mask.double()], dim=-1)
    dt = observation_gaps(batch)
    convolution = model.stack(u, {"dt": dt, "mode": "conv"}, valid=batch.valid)
    recurrence = model.stack(u, {"dt": dt, "mode": "recurrent"}, valid=batch.valid)
    torch.testing.assert_close(convolution, recurrence, atol=1e-10, rtol=0)
    torch.testing.assert_close(model(batch), convolution, atol=0, rtol=0)  # "auto" takes the convolution


def _dropped(dtype: torch.dtype = torch.float64, seed: int = 3) -> IrregularBatch:
    """A regular sampler (spacing 0.25) with about half of its observations dropped, unequal lengths."""
    generator = torch.Generator().manual_seed(seed)
    series = []
    for length in (60, 41, 17):
        keep = torch.rand(length, generator=generator) < 0.5
        keep[0] = True
        times = 0.25 * torch.arange(length, dtype=dtype)[keep]
        series.append(Series(times, torch.randn(int(keep.sum()), 2, generator=generator, dtype=dtype)))
    return collate(series)


@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.float32, 1e-5), (torch.float64, 1e-10)])
def test_dropped_observations_run_on_the_lattice_and_equal_the_recurrence(
    dtype: torch.dtype, tolerance: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = _dropped(dtype)
    model = _model("s4d", dtype, readout="mean")
    u = torch.cat([batch.values, batch.mask.to(dtype)], dim=-1)
    results = []
    for mode in ("auto", "recurrent"):
        output = model.stack(u, {"dt": observation_gaps(batch), "mode": mode}, valid=batch.valid)
        results.append((output, torch.autograd.grad(output.square().sum(), list(model.parameters()))))
    (lattice, lattice_grads), (recurrence, recurrence_grads) = results
    torch.testing.assert_close(lattice, recurrence, atol=tolerance, rtol=tolerance)
    for one, two in zip(lattice_grads, recurrence_grads):
        torch.testing.assert_close(one, two, atol=tolerance, rtol=tolerance)

    def no_recurrence(*args: object, **kwargs: object) -> None:
        raise AssertionError("the lattice batch ran the recurrence")

    monkeypatch.setattr(s4d_module, "linear_recurrence", no_recurrence)
    torch.testing.assert_close(model(batch), lattice, atol=0, rtol=0)  # "auto" takes the lattice


def test_lattice_cells_finds_whole_multiples_of_each_samples_smallest_gap() -> None:
    gaps = torch.tensor([[1.0, 1.0, 3.0, 2.0], [2.0, 4.0, 2.0, 2.0]], dtype=torch.float32)
    spacing, cells = lattice_cells(0.37 * gaps)  # type: ignore[misc]
    assert cells.tolist() == [[1, 1, 3, 2], [1, 2, 1, 1]]
    torch.testing.assert_close(spacing, torch.tensor([0.37, 0.74]))
    spacing, _ = lattice_cells(torch.tensor([[1.0, 2.0], [3.0, 1.0]]))  # type: ignore[misc]
    assert spacing.tolist() == [1.0]  # one spacing for all: one kernel
    assert lattice_cells(torch.tensor([[1.0, 1.5, 2.0]])) is None  # 1.5 is not a whole multiple
    assert lattice_cells(torch.tensor([[0.1, 1.0, 1.0]])) is None  # 21 cells > 4 x 3
    assert lattice_cells(torch.tensor([[0.25, 1.0, 1.0]])) is not None  # 9 cells <= 12


def test_gaps_are_per_sample_and_padding_repeats_the_first() -> None:
    batch = collate([_series([0.0, 0.5, 2.0], [[1, 1]] * 3), _series([3.0], [[1, 1]])])
    assert observation_gaps(batch).tolist() == [[0.5, 0.5, 1.5], [1.0, 1.0, 1.0]]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"layer": "s4"}, "`layer` must be one of"),
        ({"readout": "first"}, "`readout` must be one of"),
        ({"state": 5}, "`state` must be even for layer 's4d'"),
        ({"layer": "hope", "recurrence": "sequential"}, "`recurrence` applies to layer 's4d' only"),
        ({"norm": "group"}, "`norm` must be one of"),
        ({"activation": "elu"}, "`activation` must be one of"),
    ],
)
def test_bad_options_are_refused_by_name(options: dict, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        SSMModel(2, 4, 3, **options)


def test_options_are_refused_since_nothing_is_solved() -> None:
    model = _model("s4d")
    with pytest.raises(InvalidInputError, match="solves nothing"):
        model.run(_irregular(), registry.make("model", "ltc", channels=2, hidden=2, outputs=1).default_solve_options())


def test_list_names_the_ssm_models_and_the_registry_builds_each(capsys) -> None:
    assert main(["list"]) == 0
    listing = capsys.readouterr().out
    for name in (*LAYERS, "deep_ssm"):
        assert f"  {name} " in listing
        model = registry.model(name, channels=2, hidden=4, outputs=3, state=4)
        assert model.layer == (name if name != "deep_ssm" else "s4d")


def test_fit_on_japanese_vowels_then_evaluate_and_stability_accept_the_run(tmp_path: Path, capsys) -> None:
    config = tmp_path / "s4d.json"
    config.write_text(json.dumps({**SMALL, "batch_size": 64, "model_options": {"state": 4, "depth": 1}}))
    run = tmp_path / "run"
    flags = ["--config", str(config), "--model", "s4d", "--dataset", "japanese_vowels", "--out", str(run)]
    assert main(["fit", *flags]) == 0
    accuracy = json.loads((run / "result.json").read_text())["test_accuracy"]
    assert accuracy is not None
    capsys.readouterr()
    assert main(["evaluate", str(run)]) == 0
    assert json.loads(capsys.readouterr().out)["test_accuracy"] == accuracy
    assert main(["stability", str(run), "--samples", "4"]) == 0
    numbers = json.loads((run / "stability" / "numbers.json").read_text())
    assert numbers["sections"] == ["memory", "robustness", "solver_swap"] and set(numbers["skipped"]) == {
        "jacobian",
        "regions",
        "lyapunov",
    }
    assert [row["label"] for row in numbers["solver_swap"]] == ["trained"]
    assert numbers["memory"]["layers"][0]["memory_length_median"] >= 1
    report = (run / "stability" / "report.md").read_text()
    assert "## Memory of the state-space layers" in report and "(memory.png)" in report
    assert (run / "stability" / "memory.png").stat().st_size > 10_000


def test_a_sweep_fits_each_ssm_and_evaluate_accepts_every_run(tmp_path: Path, capsys) -> None:
    base = {"dataset": "spirals", **SMALL, "dataset_options": {"size": 32, "length": 10}}
    base["model_options"] = {"state": 4, "depth": 1}
    (tmp_path / "sweep.json").write_text(json.dumps({"base": base, "grid": {"model": list(LAYERS)}}))
    assert main(["sweep", "--config", str(tmp_path / "sweep.json"), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    runs = sorted(path.parent for path in (tmp_path / "out").glob("*/result.json"))
    assert len(runs) == 3
    for run in runs:
        capsys.readouterr()
        assert main(["evaluate", str(run)]) == 0
        assert json.loads(capsys.readouterr().out)["parameters"] > 0

"""The long-series benchmark: resampling, the baselines' distances, and its CI-size run."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch

from benchmarks import long_baselines, long_series
from neuralct.data import IrregularBatch
from neuralct.data.datasets import load

needs_aeon_data = pytest.mark.skipif(
    importlib.util.find_spec("aeon") is None, reason="the aeon wheel (UCR data) is not installed: run `make datasets`"
)
needs_aeon_runs = pytest.mark.skipif(
    not long_baselines.aeon_runs(), reason="aeon's dependencies (the bench extra) are not installed"
)


def _irregular_line() -> IrregularBatch:
    """Two samples of 2 + 3 t at irregular times, of unequal lengths (3 and 4), in float64."""
    times = torch.tensor([[0.0, 0.5, 2.0, 2.1], [1.0, 1.2, 3.0, 4.0]], dtype=torch.float64)
    values = (2 + 3 * times).unsqueeze(-1)
    return IrregularBatch.from_padded(times, values, lengths=torch.tensor([3, 4]))


def test_resampling_lays_a_line_observed_at_irregular_times_onto_an_even_grid_over_its_own_span() -> None:
    resampled = long_baselines.resample(_irregular_line(), 5)
    assert resampled.shape == (2, 1, 5)
    expected = [2 + 3 * np.linspace(0.0, 2.0, 5), 2 + 3 * np.linspace(1.0, 4.0, 5)]  # padding (t = 2.1) never read
    np.testing.assert_allclose(resampled[:, 0], expected, rtol=0, atol=1e-12)


def test_resampling_a_regular_series_to_its_own_length_returns_it_and_one_observation_is_a_constant() -> None:
    values = torch.randn(1, 6, 1, dtype=torch.float64)
    regular = IrregularBatch.from_padded(torch.arange(6.0, dtype=torch.float64), values)
    np.testing.assert_allclose(long_baselines.resample(regular, 6)[0, 0], values[0, :, 0].numpy(), atol=1e-12)
    single = IrregularBatch.from_padded(torch.zeros(1, 1, dtype=torch.float64), torch.full((1, 1, 1), 4.0))
    assert long_baselines.resample(single, 3).tolist() == [[[4.0, 4.0, 4.0]]]


def test_dtw_of_constant_series_is_the_length_times_the_squared_gap_and_zero_for_a_time_warped_copy() -> None:
    constants = torch.tensor([[[1.0] * 7], [[3.0] * 7]], dtype=torch.float64)
    # Every warping path has at least L = 7 cells, each costing (3 - 1)^2: the diagonal is optimal.
    assert long_baselines.dtw_pairwise(constants[:1], constants[1:]).item() == pytest.approx(7 * 4.0, abs=1e-12)
    series = torch.tensor([[[0.0, 1.0, 2.0, 3.0, 3.0]]], dtype=torch.float64)
    warped = torch.tensor([[[0.0, 0.0, 1.0, 2.0, 3.0]]], dtype=torch.float64)
    assert long_baselines.dtw_pairwise(series, warped).item() == 0.0
    assert long_baselines.euclidean_pairwise(series, warped).item() == pytest.approx(3.0)  # 0 + 1 + 1 + 1 + 0


def test_dtw_is_at_most_the_squared_euclidean_distance_its_diagonal_path_costs() -> None:
    generator = torch.Generator().manual_seed(0)
    x, y = (torch.randn(n, 1, 30, generator=generator, dtype=torch.float64) for n in (4, 5))
    dtw, euclidean = long_baselines.dtw_pairwise(x, y), long_baselines.euclidean_pairwise(x, y)
    assert bool((dtw <= euclidean + 1e-9).all()) and bool((dtw < 0.9 * euclidean).any())


@needs_aeon_runs
def test_torch_dtw_equals_aeons_dtw_distance() -> None:
    from aeon.distances import dtw_pairwise_distance

    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((3, 1, 60)), rng.standard_normal((4, 1, 60))
    ours = long_baselines.dtw_pairwise(torch.as_tensor(x), torch.as_tensor(y)).numpy()
    np.testing.assert_allclose(ours, dtw_pairwise_distance(x, y), rtol=1e-12)


@needs_aeon_data
@pytest.mark.parametrize(("name", "correct"), [("osu_leaf", 126), ("acsf1", 54)])
def test_euclidean_nearest_neighbour_scores_the_ucr_archives_published_accuracy(name: str, correct: int) -> None:
    # The UCR archive (Dau et al. 2019) lists 1-NN Euclidean test error 0.4793 (OSULeaf) and 0.46 (ACSF1).
    train, test = load(name, "train"), load(name, "test")
    length = int(train.lengths.max())
    accuracy = long_baselines.nearest_neighbour_accuracy(
        long_baselines.euclidean_pairwise,
        long_baselines.resample(train, length),
        train.targets,
        long_baselines.resample(test, length),
        test.targets,
    )
    assert accuracy == pytest.approx(correct / test.batch_size, abs=1e-12)


@needs_aeon_data
def test_small_run_writes_a_table_and_json_with_the_baselines_and_the_models(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(long_baselines, "aeon_runs", lambda: False)  # as in CI: aeon's files without its dependencies
    monkeypatch.setitem(long_series.MODELS, "future", {"model": "not_yet_a_model"})
    argv = ["--small", "--datasets", "pickup_gesture", "--missing", "0.5", "--models", "gru_d", "future"]
    json_path, md_path = long_series.main([*argv, "--output", str(tmp_path)])
    rows = {row["method"]: row for row in json.loads(json_path.read_text())["rows"]}
    assert list(rows) == ["1-NN Euclidean", "1-NN DTW (full window)", "MiniRocket (aeon)", "gru_d", "future"]
    assert all(
        0.0 <= rows[method]["accuracy"] <= 1.0 for method in ("1-NN Euclidean", "1-NN DTW (full window)", "gru_d")
    )
    assert rows["MiniRocket (aeon)"]["accuracy"] is None and "not installed" in rows["MiniRocket (aeon)"]["note"]
    assert rows["future"]["note"] == "skipped: model 'not_yet_a_model' not registered yet"
    assert rows["gru_d"]["parameters"] > 0 and rows["gru_d"]["missing"] == 0.5
    text = md_path.read_text()
    assert "### pickup_gesture" in text and "| gru_d | 50% |" in text

"""The chaos-and-gradients study: the PLRNN, sparsely forced BPTT, Lorenz-63 data and the example."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from examples.chaos.forcing import anneal_tau, forced_rollout, forcing_steps, prediction_error, train_forced
from examples.chaos.lorenz import lorenz63, lorenz63_field
from examples.chaos.plrnn import PLRNN
from neuralct.errors import InvalidInputError

F64 = torch.float64
ROOT = Path(__file__).resolve().parents[2]


def _model(latent: int = 6, observed: int = 3, seed: int = 0) -> PLRNN:
    return PLRNN(latent, observed, coupling_scale=1.0, generator=torch.Generator().manual_seed(seed)).double()


def _sequence(batch: int = 2, length: int = 12, observed: int = 3) -> torch.Tensor:
    return torch.randn(batch, length, observed, generator=torch.Generator().manual_seed(1), dtype=F64)


def _grads(loss: torch.Tensor, model: PLRNN) -> list[torch.Tensor]:
    return list(torch.autograd.grad(loss, list(model.parameters()), allow_unused=False))


def test_plrnn_maps_batches_to_the_documented_shapes() -> None:
    model = _model(latent=5, observed=2)
    z = torch.randn(4, 5, dtype=F64)
    assert model.step(z).shape == (4, 5)
    assert model.observe(z).shape == (4, 2)
    assert model.observe(torch.randn(4, 7, 5, dtype=F64)).shape == (4, 7, 2)
    assert model.infer_state(torch.randn(4, 7, 2, dtype=F64)).shape == (4, 7, 5)
    trajectory = model.rollout(z, 9)
    assert trajectory.shape == (4, 10, 5) and torch.equal(trajectory[:, 0], z)
    torch.testing.assert_close(trajectory[:, 3], model.step(model.step(model.step(z))))
    assert model(z, 9).shape == (4, 10, 2)


def test_plrnn_step_is_the_piecewise_linear_map_with_a_zero_diagonal_coupling() -> None:
    model = _model()
    with torch.no_grad():
        model.coupling.fill_(0.7)  # the raw parameter's diagonal is masked out
    coupling = model.coupling_matrix()
    assert torch.equal(torch.diagonal(coupling), torch.zeros(6, dtype=F64))
    z = torch.randn(3, 6, dtype=F64)
    expected = z @ torch.diag(model.diagonal).T + torch.relu(z) @ coupling.T + model.bias
    torch.testing.assert_close(model.step(z), expected)
    model.step(z).sum().backward()
    assert torch.equal(torch.diagonal(model.coupling.grad), torch.zeros(6, dtype=F64))


def test_inferred_state_inverts_the_observation_when_b_has_full_column_rank() -> None:
    model = _model(latent=3, observed=5)
    z = torch.randn(8, 3, dtype=F64)
    torch.testing.assert_close(model.infer_state(model.observe(z)), z)


def test_forcing_every_step_starts_every_step_from_the_data_inferred_state() -> None:
    model, x = _model(), _sequence()
    rollout = forced_rollout(model, x, tau=1)
    manual = [model.infer_state(x[:, 0])] + [model.step(model.infer_state(x[:, t - 1])) for t in range(1, 12)]
    torch.testing.assert_close(rollout.latents, torch.stack(manual, dim=1))
    assert rollout.forced == tuple(range(11))
    torch.testing.assert_close(rollout.predictions, model.observe(rollout.latents))
    torch.testing.assert_close(rollout.loss, torch.mean((rollout.predictions[:, 1:] - x[:, 1:]) ** 2))


def test_gradients_of_a_step_reach_back_only_to_the_last_forcing() -> None:
    model, x = _model(), _sequence(length=12)
    tau, last = 4, 11  # forcings at 0, 4, 8: the prediction of step 11 starts from the state inferred at 8
    forced = forced_rollout(model, x, tau)
    step_loss = torch.mean((forced.predictions[:, last] - x[:, last]) ** 2)
    truncated = model.observe(model.rollout(model.infer_state(x[:, 8]), 3)[:, -1])
    truncated_loss = torch.mean((truncated - x[:, last]) ** 2)
    torch.testing.assert_close(step_loss, truncated_loss)
    forced_grads = _grads(step_loss, model)
    for got, expected in zip(forced_grads, _grads(truncated_loss, model)):
        torch.testing.assert_close(got, expected)
    plain = forced_rollout(model, x, None)
    plain_loss = torch.mean((plain.predictions[:, last] - x[:, last]) ** 2)
    assert not torch.allclose(_grads(plain_loss, model)[0], forced_grads[0])  # plain BPTT reaches back to step 0


def test_plain_bptt_is_tau_none_and_any_tau_at_least_the_length() -> None:
    model, x = _model(), _sequence(length=10)
    plain = forced_rollout(model, x, None)
    torch.testing.assert_close(plain.latents, model.rollout(model.infer_state(x[:, 0]), 9))
    assert plain.forced == (0,)
    for tau in (9, 10, 1000):
        same = forced_rollout(model, x, tau)
        assert torch.equal(same.latents, plain.latents) and torch.equal(same.loss, plain.loss)
    assert forcing_steps(10, 3) == frozenset({0, 3, 6})


def test_anneal_tau_rises_linearly_from_one_to_tau() -> None:
    schedule = [anneal_tau(epoch, 50, 30) for epoch in range(50)]
    assert schedule[0] == 1 and schedule[-1] == 30
    assert all(a <= b for a, b in zip(schedule, schedule[1:]))
    assert schedule[25] == 1 + 29 * 25 // 49
    assert anneal_tau(0, 1, 30) == 30 and anneal_tau(7, 10, None) is None


def test_training_records_each_step_and_is_reproducible() -> None:
    data = lorenz63(300, burn_in=200, batch=2, dtype=torch.float32)
    runs = []
    for _ in range(2):
        model = PLRNN(8, 3, generator=torch.Generator().manual_seed(0))
        runs.append(train_forced(model, data, tau=5, epochs=30, lr=1e-2, batch=4, seq_len=20, clip_norm=0.5, seed=3))
    first, second = runs
    assert first.losses == second.losses and first.grad_norms == second.grad_norms
    assert len(first.losses) == len(first.grad_norms) == 30 and first.skipped == []
    assert first.taus[0] == 1 and first.taus[-1] == 5
    assert max(first.grad_norms) > 0.5  # recorded before clipping
    errors = prediction_error(model, data, 5)
    assert errors.shape == (5,) and bool(torch.isfinite(errors).all())


def test_lorenz63_is_standardised_per_channel() -> None:
    data = lorenz63(500, batch=3, seed=2)
    assert data.shape == (3, 500, 3) and data.dtype == torch.get_default_dtype()
    flat = data.reshape(-1, 3).double()
    torch.testing.assert_close(flat.mean(0), torch.zeros(3, dtype=F64), atol=1e-5, rtol=0)
    torch.testing.assert_close(flat.std(0), torch.ones(3, dtype=F64), atol=1e-5, rtol=0)
    assert not torch.equal(data[0], data[1])


def test_lorenz63_trajectory_satisfies_the_ode_to_second_order_in_dt() -> None:
    field = lorenz63_field()
    residuals = []
    for dt, factor in ((0.01, 1), (0.005, 2)):
        states = lorenz63(200 * factor + 1, dt, burn_in=500 * factor, batch=2, standardise=False, dtype=F64)
        central = (states[:, 2:] - states[:, :-2]) / (2 * dt)  # y'(t) + dt^2 y'''(t) / 6 + O(dt^4)
        residual = (central - field(None, states[:, 1:-1])).abs()[:, factor - 1 :: factor]
        residuals.append(residual)
    scale = field(None, states).abs().max()
    assert float(residuals[0].max()) < 0.01 * float(scale)
    ratio = float(residuals[0].mean() / residuals[1].mean())
    assert ratio == pytest.approx(4.0, rel=0.1)


@pytest.mark.parametrize(
    "call",
    [
        lambda: PLRNN(0, 3),
        lambda: PLRNN(4, 3, decay=float("nan")),
        lambda: _model().step(torch.randn(2, 5, dtype=F64)),
        lambda: _model().infer_state(torch.randn(2, 4, dtype=F64)),
        lambda: _model().rollout(torch.randn(2, 6, dtype=F64), -1),
        lambda: forced_rollout(_model(), _sequence(), tau=0),
        lambda: forced_rollout(_model(), _sequence(length=1), tau=None),
        lambda: anneal_tau(5, 5, 10),
        lambda: prediction_error(_model(), _sequence(length=5), 5),
        lambda: train_forced(_model(), _sequence(length=5), tau=2, epochs=1, lr=1e-3, batch=1, seq_len=6),
        lambda: lorenz63(1),
        lambda: lorenz63(10, dt=0.0),
    ],
)
def test_bad_inputs_raise_invalid_input_error(call) -> None:
    with pytest.raises(InvalidInputError):
        call()


def test_the_small_study_writes_its_figures_and_gradients_grow_at_the_lyapunov_rate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "examples"))  # the study's code, imported as `chaos.*` by the example
    spec = importlib.util.spec_from_file_location("neuralct_example_chaos", ROOT / "examples" / "chaos_gradients.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    summary = module.main(["--size", "small", "--out", str(tmp_path)])
    for name in ("chaos_gradient_horizon.png", "chaos_training.png", "chaos_prediction.png", "summary.json"):
        assert (tmp_path / name).stat().st_size > 1000
    assert summary["lorenz_lyapunov_max"] == pytest.approx(0.906, rel=0.1)
    assert summary["gradient_rate"] == pytest.approx(summary["lorenz_lyapunov_max"], rel=0.15)
    assert sorted(summary["arms"]) == ["bptt", "bptt_clipped", "sparse_forcing"]
    for arm in summary["arms"].values():
        assert arm["mse_20_steps"] >= 0 and arm["grad_norm_max"] >= arm["grad_norm_median"] > 0

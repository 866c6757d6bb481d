"""Noisy RNN: the Lipschitz RNN as an SDE, against a hand-written Euler RNN, closed-form
increment statistics, SciPy and torchsde."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torchsde
from scipy.integrate import solve_ivp

import neuralct as nct
from neuralct.data import Series, collate
from neuralct.data.series import IrregularBatch
from neuralct.errors import InvalidInputError
from neuralct.models.base import SolveOptions
from neuralct.models.noisy_rnn import NoisyRNN, ReferenceNoisyEuler, lipschitz_matrix

F64 = torch.float64
NAN = float("nan")


def irregular_batch() -> IrregularBatch:
    """Three samples with their own times, a missing value and padding."""
    return collate(
        [
            Series(
                torch.tensor([0.0, 0.4, 1.3, 2.0]), torch.tensor([[1.0, -0.5], [0.3, NAN], [-1.2, 0.8], [0.5, 0.5]])
            ),
            Series(torch.tensor([0.2, 1.1]), torch.tensor([[-0.7, 0.2], [1.5, -1.0]])),
            Series(torch.tensor([-0.5, 0.1, 0.3]), torch.tensor([[0.0, 1.0], [NAN, -0.4], [2.0, 0.1]])),
        ]
    ).to(dtype=F64)


def model(**options) -> NoisyRNN:
    """A small float64 NoisyRNN without noise unless `options` ask for it."""
    return NoisyRNN(2, 5, 3, init_std=4.0, **{"additive": 0.0, "multiplicative": 0.0, **options}).double()


def drift(net: NoisyRNN, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """$A h + \\tanh(W h + U x + b)$, the matrices built here from the raw parameters."""
    cell, eye = net.cell, torch.eye(5, dtype=F64)
    a = (1 - cell.beta) * (cell.m_a + cell.m_a.T) + cell.beta * (cell.m_a - cell.m_a.T) - cell.gamma_a * eye
    w = (1 - cell.beta) * (cell.m_w + cell.m_w.T) + cell.beta * (cell.m_w - cell.m_w.T) - cell.gamma_w * eye
    return a @ h + torch.tanh(w @ h + cell.input_map.weight @ x + cell.input_map.bias)


def filled_inputs(batch: IrregularBatch, b: int) -> torch.Tensor:
    """`[T, C]` sample b's observations with missing values carried forward."""
    x = batch.with_nan()[b].clone()
    for k in range(1, x.shape[0]):
        x[k] = torch.where(torch.isnan(x[k]), x[k - 1], x[k])
    return x


def euler_rnn(net: NoisyRNN, batch: IrregularBatch) -> torch.Tensor:
    """`[B, O]` the discrete Euler RNN: h = 0, h += first_gap f(h, x_0), h += (t_k - t_{k-1}) f(h, x_k)."""
    out = []
    for b in range(batch.batch_size):
        length, times, x = int(batch.lengths[b]), batch.times[b], filled_inputs(batch, b)
        h = net.first_gap * drift(net, torch.zeros(5, dtype=F64), x[0])
        for k in range(1, length):
            h = h + (times[k] - times[k - 1]) * drift(net, h, x[k])
        out.append(net.decoder(h))
    return torch.stack(out)


# ---------------------------------------------------------------- noise-free equals the Euler RNN


@pytest.mark.parametrize("solver", [nct.Euler(), nct.EulerMaruyama(), nct.Milstein()], ids=lambda s: type(s).__name__)
def test_zero_noise_in_training_equals_the_deterministic_euler_rnn(solver):
    net = model()
    batch = irregular_batch()
    ours = net(batch, SolveOptions(solver, nct.KnotToKnot()))
    torch.testing.assert_close(ours, euler_rnn(net, batch), rtol=0, atol=1e-12)


def test_eval_mode_is_deterministic_and_equals_the_euler_rnn_even_with_an_sde_solver():
    net = model(additive=0.3, multiplicative=0.2).eval()
    batch = irregular_batch()
    expected = euler_rnn(net, batch)
    for options in (None, SolveOptions(nct.EulerMaruyama(), nct.KnotToKnot())):
        first, second = net(batch, options), net(batch, options)
        assert torch.equal(first, second)
        torch.testing.assert_close(first, expected, rtol=0, atol=1e-12)


def test_training_with_noise_differs_between_calls_and_follows_torch_manual_seed():
    net = model(additive=0.3, multiplicative=0.2).train()
    batch = irregular_batch()
    torch.manual_seed(1)
    first = net(batch)
    second = net(batch)
    torch.manual_seed(1)
    again = net(batch)
    assert (first - second).abs().min() > 0
    assert torch.equal(first, again)


def test_eval_mode_with_an_adaptive_solver_matches_scipy_gap_by_gap():
    net = model(additive=0.3).eval()
    batch = irregular_batch()
    ours = net(batch, SolveOptions(nct.Dopri5(), nct.PIDController(rtol=1e-10, atol=1e-12)))
    for b in range(batch.batch_size):
        length, times, x = int(batch.lengths[b]), batch.times[b].tolist(), filled_inputs(batch, b)
        edges = [times[0] - net.first_gap] + times[:length]
        h = np.zeros(5)
        for k in range(length):

            def rhs(t, y, x_k=x[k]):
                with torch.no_grad():
                    return drift(net, torch.from_numpy(y), x_k).numpy()

            h = solve_ivp(rhs, (edges[k], edges[k + 1]), h, method="DOP853", rtol=1e-12, atol=1e-13).y[:, -1]
        with torch.no_grad():
            expected = net.decoder(torch.from_numpy(h))
        torch.testing.assert_close(ours[b], expected, rtol=0, atol=1e-8)


# ---------------------------------------------------------------- increment statistics


def one_step(net: NoisyRNN, y0: torch.Tensor, dt: float, solver) -> torch.Tensor:
    """`[B, H]` the state one step of `dt` after `y0` at t = 0, inputs all 0.5."""
    batch = IrregularBatch.from_padded(
        torch.tensor([0.0, dt], dtype=F64), torch.full((y0.shape[0], 2, 2), 0.5, dtype=F64)
    )
    ys = nct.solve(
        net.term(batch), y0, torch.tensor([0.0, dt], dtype=F64), solver=solver, controller=nct.KnotToKnot()
    ).ys
    return ys[:, -1]


def assert_variance(sample: torch.Tensor, expected: torch.Tensor) -> None:
    """Per-unit sample variance of `sample` `[N, H]` within 4 standard errors of `expected` `[H]`
    (the variance of a Gaussian's sample variance is 2 sigma^4 / (N - 1))."""
    error = 4 * expected * math.sqrt(2 / (sample.shape[0] - 1))
    assert ((sample.var(dim=0) - expected).abs() <= error).all(), (sample.var(dim=0), expected)


Y0 = torch.tensor([0.5, -1.0, 2.0, 0.25, -3.0], dtype=F64)


def test_additive_noise_gives_one_step_increments_of_variance_eps_squared_dt():
    net = model(additive=0.3).train()
    dt, y0 = 0.05, Y0.expand(4000, -1)
    increments = one_step(net, y0, dt, nct.EulerMaruyama()) - y0
    assert_variance(increments, torch.full((5,), 0.3**2 * dt, dtype=F64))


def test_multiplicative_noise_gives_one_step_increments_of_variance_eps_squared_h_squared_dt():
    net = model(multiplicative=0.4).train()
    dt, y0 = 0.05, Y0.expand(4000, -1)
    increments = one_step(net, y0, dt, nct.EulerMaruyama()) - y0
    assert_variance(increments, 0.4**2 * Y0**2 * dt)
    mean_drift = dt * drift(net, Y0, torch.full((2,), 0.5, dtype=F64))
    assert ((increments.mean(dim=0) - mean_drift).abs() <= 4 * 0.4 * Y0.abs() * math.sqrt(dt / 4000)).all()


def test_reference_form_scales_the_step_by_m_uniform_in_one_minus_eps_to_one():
    net = model(multiplicative=0.3, noise_form="reference").train()
    assert net.default_solve_options().solver == ReferenceNoisyEuler(0.0, 0.3)
    dt, y0 = 0.05, Y0.expand(4000, -1)
    m = (one_step(net, y0, dt, ReferenceNoisyEuler(0.0, 0.3)) - y0) / (
        dt * drift(net, Y0, torch.full((2,), 0.5, dtype=F64))
    )
    assert m.min() >= 0.7 - 1e-12 and m.max() < 1.0
    assert m.min() < 0.701 and m.max() > 0.999
    assert abs(float(m.mean().detach()) - 0.85) < 4 * 0.3 / math.sqrt(12 * m.numel())


def test_reference_form_adds_noise_of_variance_eps_squared_whatever_the_step():
    net = model(additive=0.2, noise_form="reference").train()
    y0 = Y0.expand(4000, -1)
    for dt in (0.01, 1.0):
        step = dt * drift(net, Y0, torch.full((2,), 0.5, dtype=F64))
        assert_variance(
            one_step(net, y0, dt, ReferenceNoisyEuler(0.2, 0.0)) - y0 - step, torch.full((5,), 0.04, dtype=F64)
        )


def test_reference_form_is_the_euler_rnn_in_eval_mode():
    net = model(additive=0.2, multiplicative=0.3, noise_form="reference").eval()
    batch = irregular_batch()
    ours = net(batch, SolveOptions(ReferenceNoisyEuler(0.2, 0.3), nct.KnotToKnot()))
    torch.testing.assert_close(ours, euler_rnn(net, batch), rtol=0, atol=1e-12)


# ---------------------------------------------------------------- Lipschitz matrices


def test_lipschitz_symmetric_part_is_at_most_minus_gamma_when_beta_is_one_or_m_plus_m_transpose_is_negative():
    gamma = 0.1
    m = torch.randn(6, 6, dtype=F64)
    skew_only = lipschitz_matrix(m, 1.0, gamma)
    torch.testing.assert_close(skew_only + skew_only.T, -2 * gamma * torch.eye(6, dtype=F64))
    b = torch.randn(6, 6, dtype=F64)
    dissipative = -b @ b.T + (m - m.T)  # M + M^T = -2 B B^T <= 0
    for beta in (0.0, 0.5, 0.75):
        a = lipschitz_matrix(dissipative, beta, gamma)
        assert torch.linalg.eigvalsh((a + a.T) / 2).max() <= -gamma + 1e-12


def test_lipschitz_symmetric_part_has_eigenvalues_one_minus_beta_times_those_of_m_plus_m_transpose_minus_gamma():
    # For a general M the bound -gamma does not hold when beta < 1: the eigenvalues move with M + M^T.
    m, beta, gamma = torch.randn(6, 6, dtype=F64), 0.75, 0.1
    a = lipschitz_matrix(m, beta, gamma)
    expected = (1 - beta) * np.linalg.eigvalsh((m + m.T).numpy()) - gamma
    np.testing.assert_allclose(np.linalg.eigvalsh(((a + a.T) / 2).numpy()), expected, atol=1e-12)


# ---------------------------------------------------------------- peer library


class TorchsdeNoisyRNN:
    """The same SDE for torchsde, written from the model's raw parameters and inputs."""

    noise_type, sde_type = "diagonal", "ito"

    def __init__(self, net: NoisyRNN, edges: torch.Tensor, x: torch.Tensor):
        self.net, self.edges, self.x = net, edges, x

    def f(self, t, y):
        k = int(torch.searchsorted(self.edges, t.reshape(1), right=True).clamp(1, len(self.edges) - 1)) - 1
        return torch.stack([drift(self.net, row, self.x[b, k]) for b, row in enumerate(y)])

    def g(self, t, y):
        return self.net.additive + self.net.multiplicative * y


def test_euler_maruyama_matches_torchsde_euler_on_the_same_brownian_path():
    net = model(additive=0.3, multiplicative=0.2).train()
    x = torch.randn(4, 5, 2, dtype=F64)
    batch = IrregularBatch.from_padded(torch.linspace(0.0, 1.0, 5, dtype=F64), x)
    term, ts = net.term(batch), net.save_times(batch)
    y0 = net.initial_state(batch)
    with torch.no_grad():
        ours = nct.solve(term, y0, ts, solver=nct.EulerMaruyama(), controller=nct.ConstantStep(1 / 16)).ys
        sde = TorchsdeNoisyRNN(net, ts[0], x)
        theirs = torchsdeint(sde, y0, ts[0], term.noise.brownian.interval)
    # Steps that land on a knot stop 4 ulps short of it (see _loop._short_of_jumps): the
    # Brownian increment over that sliver, about 1e-8, is the only difference.
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-12)
    assert (ours[:, -1] - y0).abs().min() > 1e-3


def torchsdeint(sde, y0, ts, bm):
    return torchsde.sdeint(sde, y0, ts, bm=bm, method="euler", dt=1 / 16).transpose(0, 1)


# ---------------------------------------------------------------- any solver, per sample, gradients


@pytest.mark.parametrize(
    "solver, sde_type",
    [
        (nct.EulerMaruyama(), nct.SDEType.ITO),
        (nct.Milstein(), nct.SDEType.ITO),
        (nct.StochasticHeun(), nct.SDEType.STRATONOVICH),
        (nct.ReversibleHeun(), nct.SDEType.STRATONOVICH),
    ],
    ids=lambda s: type(s).__name__ if not isinstance(s, nct.SDEType) else s.name,
)
def test_every_sde_solver_trains_the_model_and_gradients_reach_every_parameter(solver, sde_type):
    net = model(additive=0.1, multiplicative=0.1, sde_type=sde_type).train()
    out = net(irregular_batch(), SolveOptions(solver, nct.ConstantStep(0.25)))
    out.square().sum().backward()
    for name, parameter in net.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


@pytest.mark.parametrize(
    "options",
    [None, SolveOptions(nct.Tsit5(), nct.PIDController(rtol=1e-8, atol=1e-10))],
    ids=["knot-to-knot-euler", "tsit5-pid"],
)
def test_batch_composition_does_not_change_a_sample(options):
    net = model(additive=0.3).eval()
    batch = irregular_batch()
    together = net(batch, options)
    for b in range(batch.batch_size):
        torch.testing.assert_close(net(batch.select([b]), options)[0], together[b], rtol=0, atol=1e-12)


def test_an_ode_solver_in_training_with_noise_is_refused_naming_both():
    net = model(additive=0.1).train()
    with pytest.raises(nct.IncompatibleTermError, match="Euler.*SDETerm"):
        net(irregular_batch(), SolveOptions(nct.Euler(), nct.KnotToKnot()))


@pytest.mark.parametrize(
    "options, name",
    [
        ({"beta": 1.5}, "beta"),
        ({"gamma_a": -1.0}, "gamma_a"),
        ({"gamma_w": float("nan")}, "gamma_w"),
        ({"init_std": 0.0}, "init_std"),
        ({"additive": -0.1}, "additive"),
        ({"multiplicative": 2.0, "noise_form": "reference"}, "multiplicative"),
        ({"noise_form": "ito"}, "noise_form"),
        ({"sde_type": "ito"}, "sde_type"),
        ({"first_gap": 0.0}, "first_gap"),
    ],
)
def test_bad_options_raise_errors_naming_them(options, name):
    with pytest.raises(InvalidInputError, match=f"`{name}`"):
        NoisyRNN(2, 5, 3, **options)


@pytest.mark.parametrize("sizes, name", [((0, 5, 3), "channels"), ((2, 2.5, 3), "hidden"), ((2, 5, True), "outputs")])
def test_bad_sizes_raise_errors_naming_them(sizes, name):
    with pytest.raises(InvalidInputError, match=f"`{name}`"):
        NoisyRNN(*sizes)


def test_the_default_noise_is_the_papers_and_an_ode_solver_is_refused_before_training(tmp_path, capsys) -> None:
    from neuralct.cli import main

    default = NoisyRNN(2, 5, 3)
    assert (default.additive, default.multiplicative) == (0.02, 0.02)
    flags = ["--model", "noisy_rnn", "--solver", "tsit5", "--dataset", "spirals", "--out", str(tmp_path / "run")]
    assert main(["fit", *flags]) == 2
    error = capsys.readouterr().err
    assert "Tsit5 cannot integrate" in error and "can integrate model 'noisy_rnn': euler_maruyama, milstein" in error
    assert not (tmp_path / "run").exists()  # refused before the run folder is written

"""SDE support: noise terms, Brownian paths, the four SDE solvers and the torchsde backend."""

from __future__ import annotations

import functools
import math

import pytest
import torch
import torchsde
from hypothesis import given, settings
from hypothesis import strategies as st

import neuralct as nct
from neuralct.backends import TorchSDE, TorchSDEMethod

F64 = torch.float64
ITO, STRAT = nct.SDEType.ITO, nct.SDEType.STRATONOVICH
DIAGONAL, ADDITIVE, SCALAR, GENERAL = (
    nct.NoiseType.DIAGONAL,
    nct.NoiseType.ADDITIVE,
    nct.NoiseType.SCALAR,
    nct.NoiseType.GENERAL,
)
SDE_SOLVERS = [nct.EulerMaruyama(), nct.Milstein(), nct.StochasticHeun(), nct.ReversibleHeun()]


def loglog_slope(dts: list[float], errors: list[float]) -> float:
    """Least-squares slope of log(error) against log(dt)."""
    x, y = torch.tensor(dts, dtype=F64).log(), torch.tensor(errors, dtype=F64).log()
    x, y = x - x.mean(), y - y.mean()
    return float((x * y).sum() / (x * x).sum())


def gbm(mu: float, sigma: float, path: nct.BrownianPath, sde_type: nct.SDEType) -> nct.SDETerm:
    """Geometric Brownian motion dX = mu X dt + sigma X dW (diagonal noise)."""
    return nct.SDETerm(
        nct.ODETerm(lambda t, y, args: mu * y),
        nct.NoiseTerm(lambda t, y, args: sigma * y, path, DIAGONAL, sde_type),
    )


def final_state(term: nct.SDETerm, y0: torch.Tensor, solver, dt: float, t_end: float = 1.0) -> torch.Tensor:
    ts = torch.tensor([0.0, t_end], dtype=F64)
    return nct.solve(term, y0, ts, solver=solver, controller=nct.ConstantStep(dt)).ys[:, -1]


def strong_errors(term, y0, exact, solver, dts) -> list[float]:
    return [float((final_state(term, y0, solver, dt) - exact).abs().mean()) for dt in dts]


# --- a small SDE in every noise type -------------------------------------------------------------

BATCH, STATE, NOISE = 5, 3, 2
_MIX = torch.linspace(-0.4, 0.4, STATE * STATE, dtype=F64).reshape(STATE, STATE)
_SPREAD = torch.linspace(-0.3, 0.5, STATE * STATE * NOISE, dtype=F64).reshape(STATE, STATE, NOISE)


def drift(t, y, args):
    return torch.tanh(y @ _MIX) + 0.1 * t[:, None].to(y.dtype)


DIFFUSIONS = {
    DIAGONAL: (lambda t, y, args: 0.3 * torch.sin(y) + 0.2, STATE),
    ADDITIVE: (lambda t, y, args: _SPREAD.sum(0).expand(y.shape[0], STATE, NOISE), NOISE),
    SCALAR: (lambda t, y, args: (0.3 * torch.sin(y) + 0.2)[..., None], 1),
    GENERAL: (lambda t, y, args: torch.einsum("bd,dem->bem", torch.cos(y), _SPREAD), NOISE),
}


def small_sde(noise_type: nct.NoiseType, sde_type: nct.SDEType, seed: int = 3, batch: int = BATCH) -> nct.SDETerm:
    g, channels = DIFFUSIONS[noise_type]
    path = nct.BrownianPath(0.0, 1.0, (batch, channels), dtype=F64, seed=seed)
    return nct.SDETerm(nct.ODETerm(drift), nct.NoiseTerm(g, path, noise_type, sde_type))


def y0_small(batch: int = BATCH) -> torch.Tensor:
    return torch.linspace(-1.0, 1.0, batch * STATE, dtype=F64).reshape(batch, STATE)


def claimed_pairs():
    for solver in SDE_SOLVERS:
        for noise_type in nct.NoiseType:
            for sde_type in nct.SDEType:
                if noise_type in solver.noise_types and sde_type in solver.sde_types:
                    yield pytest.param(
                        solver, noise_type, sde_type, id=f"{type(solver).__name__}-{noise_type.name}-{sde_type.name}"
                    )


# --- strong and weak order ------------------------------------------------------------------------

# Over seeds 1 to 8 every measured strong order below lies within 0.1 of the declared one, while a
# wrong declaration (0.5 for 1.0 or the reverse) is 0.5 off: the band fails on either side.
ORDER_BAND = 0.2


def test_euler_maruyama_has_strong_order_one_half_on_geometric_brownian_motion():
    mu, sigma, batch = 0.5, 0.8, 1000
    path = nct.BrownianPath(0.0, 1.0, (batch, 1), dtype=F64, seed=1)
    exact = torch.exp(mu - sigma**2 / 2 + sigma * path.evaluate(1.0))
    dts = [2.0**-k for k in range(3, 9)]
    errors = strong_errors(gbm(mu, sigma, path, ITO), torch.ones(batch, 1, dtype=F64), exact, nct.EulerMaruyama(), dts)
    assert abs(loglog_slope(dts, errors) - nct.EulerMaruyama().strong_order(DIAGONAL)) <= ORDER_BAND


def test_milstein_has_strong_order_one_on_geometric_brownian_motion():
    mu, sigma, batch = 0.5, 0.8, 1000
    path = nct.BrownianPath(0.0, 1.0, (batch, 1), dtype=F64, seed=2)
    exact = torch.exp(mu - sigma**2 / 2 + sigma * path.evaluate(1.0))
    dts = [2.0**-k for k in range(3, 9)]
    errors = strong_errors(gbm(mu, sigma, path, ITO), torch.ones(batch, 1, dtype=F64), exact, nct.Milstein(), dts)
    assert abs(loglog_slope(dts, errors) - nct.Milstein().strong_order(DIAGONAL)) <= ORDER_BAND


@pytest.mark.parametrize("solver", [nct.StochasticHeun(), nct.ReversibleHeun(), nct.Milstein()], ids=type)
def test_stratonovich_solvers_converge_to_the_stratonovich_solution_of_geometric_brownian_motion(solver):
    mu, sigma, batch = 0.5, 0.8, 1000
    path = nct.BrownianPath(0.0, 1.0, (batch, 1), dtype=F64, seed=4)
    exact = torch.exp(mu + sigma * path.evaluate(1.0))  # Stratonovich: no -sigma^2/2 shift
    dts = [2.0**-k for k in range(3, 9)]
    errors = strong_errors(gbm(mu, sigma, path, STRAT), torch.ones(batch, 1, dtype=F64), exact, solver, dts)
    assert abs(loglog_slope(dts, errors) - solver.strong_order(DIAGONAL)) <= ORDER_BAND
    assert errors[-1] < 0.05


def solver_params(pairs):
    return [pytest.param(solver, sde_type, id=f"{type(solver).__name__}-{sde_type.name}") for solver, sde_type in pairs]


@pytest.mark.parametrize(
    "solver, sde_type",
    solver_params(
        [
            (nct.EulerMaruyama(), ITO),
            (nct.Milstein(), ITO),
            (nct.Milstein(), STRAT),
            (nct.StochasticHeun(), STRAT),
            (nct.ReversibleHeun(), STRAT),
        ]
    ),
)
def test_every_solver_attains_its_declared_strong_order_on_a_nonlinear_diagonal_diffusion(solver, sde_type):
    # dy = sin(y) o dW (Stratonovich) has y(t) = 2 atan(tan(y0 / 2) exp(W_t)); its Itô form adds
    # the drift sin(y) cos(y) / 2. sigma'' != 0 here, unlike for geometric Brownian motion.
    batch = 1000
    path = nct.BrownianPath(0.0, 1.0, (batch, 1), dtype=F64, seed=5)
    correction = (
        (lambda t, y, args: 0.5 * torch.sin(y) * torch.cos(y)) if sde_type == ITO else (lambda t, y, args: 0 * y)
    )
    term = nct.SDETerm(
        nct.ODETerm(correction), nct.NoiseTerm(lambda t, y, args: torch.sin(y), path, DIAGONAL, sde_type)
    )
    y0 = torch.ones(batch, 1, dtype=F64)
    exact = 2 * torch.atan(math.tan(0.5) * torch.exp(path.evaluate(1.0)))
    dts = [2.0**-k for k in range(3, 9)]
    errors = strong_errors(term, y0, exact, solver, dts)
    assert abs(loglog_slope(dts, errors) - solver.strong_order(DIAGONAL)) <= ORDER_BAND


def non_commutative_sde(path: nct.BrownianPath, sde_type: nct.SDEType) -> nct.SDETerm:
    """dy = -y/2 dt + sigma(y) dW with sigma = [[1 + sin(y_2) / 2, 0], [0, cos(y_1)]].

    The two noise columns do not commute (their Lie bracket is (-cos(y_1) cos(y_2) / 2,
    -(1 + sin(y_2) / 2) sin(y_1)) != 0), so no method that sees only Brownian increments beats
    strong order 1/2. The Itô-Stratonovich correction sum_j (sigma_j . grad) sigma_j vanishes,
    so both readings have the same solution and one reference serves every solver.
    """

    def diffusion(t, y, args):
        zero = torch.zeros_like(y[:, 0])
        rows = [torch.stack([1 + 0.5 * torch.sin(y[:, 1]), zero], -1), torch.stack([zero, torch.cos(y[:, 0])], -1)]
        return torch.stack(rows, dim=1)

    return nct.SDETerm(nct.ODETerm(lambda t, y, args: -0.5 * y), nct.NoiseTerm(diffusion, path, GENERAL, sde_type))


GENERAL_BATCH, GENERAL_FINE_DT = 256, 2.0**-10


@functools.cache
def non_commutative_reference() -> tuple[nct.BrownianPath, torch.Tensor]:
    """The Brownian path and y(1) `[B, 2]` by Euler-Maruyama at 1/16 of the finest step tested."""
    path = nct.BrownianPath(0.0, 1.0, (GENERAL_BATCH, 2), dtype=F64, seed=0)
    y0 = torch.tensor([0.5, -0.5], dtype=F64).expand(GENERAL_BATCH, 2)
    return path, final_state(non_commutative_sde(path, ITO), y0, nct.EulerMaruyama(), GENERAL_FINE_DT)


@pytest.mark.parametrize(
    "solver, sde_type",
    solver_params([(nct.EulerMaruyama(), ITO), (nct.StochasticHeun(), STRAT), (nct.ReversibleHeun(), STRAT)]),
)
def test_every_solver_for_general_noise_attains_its_declared_strong_order_on_non_commutative_noise(solver, sde_type):
    path, reference = non_commutative_reference()
    y0 = torch.tensor([0.5, -0.5], dtype=F64).expand(GENERAL_BATCH, 2)
    dts = [2.0**-k for k in range(2, 7)]
    term = non_commutative_sde(path, sde_type)
    errors = [float((final_state(term, y0, solver, dt) - reference).norm(dim=-1).mean()) for dt in dts]
    assert abs(loglog_slope(dts, errors) - solver.strong_order(GENERAL)) <= ORDER_BAND


def ornstein_uhlenbeck(path: nct.BrownianPath, theta: float, sigma: float) -> nct.SDETerm:
    return nct.SDETerm(
        nct.ODETerm(lambda t, y, args: -theta * y),
        nct.NoiseTerm(lambda t, y, args: sigma * torch.ones_like(y), path, DIAGONAL, ITO),
    )


def test_euler_maruyama_has_weak_order_one_for_the_mean_and_variance_of_ornstein_uhlenbeck():
    # Control variate: R = E[X_T] + sigma * sum_k exp(-theta (T - s_k)) dW_k on a fine grid of the
    # *same* Brownian path has known mean and variance and follows X_T closely, so subtracting
    # its sample moments removes almost all Monte Carlo noise from the weak-error estimates.
    theta, sigma, x0, batch, fine = 2.0, 1.0, 4.0, 2000, 2**10
    mean_exact = x0 * math.exp(-theta)
    var_exact = sigma**2 / (2 * theta) * (1 - math.exp(-2 * theta))
    path = nct.BrownianPath(0.0, 1.0, (batch, 1), dtype=F64, seed=0)
    grid = torch.linspace(0.0, 1.0, fine + 1, dtype=F64)
    increments = torch.stack([path.increment(grid[k], grid[k + 1])[:, 0] for k in range(fine)])
    weights = torch.exp(-theta * (1.0 - grid[1:]))
    control = mean_exact + sigma * (weights[:, None] * increments).sum(0)
    control_var = sigma**2 / fine * float((weights**2).sum())
    term, y0 = ornstein_uhlenbeck(path, theta, sigma), torch.full((batch, 1), x0, dtype=F64)
    dts = [2.0**-k for k in range(3, 7)]
    mean_errors, var_errors = [], []
    for dt in dts:
        x = final_state(term, y0, nct.EulerMaruyama(), dt)[:, 0]
        mean_errors.append(abs(float((x - control).mean())))
        var_errors.append(abs(float(x.var() - control.var()) + control_var - var_exact))
    assert abs(loglog_slope(dts, mean_errors) - nct.EulerMaruyama.weak_order) < 0.3
    assert abs(loglog_slope(dts, var_errors) - nct.EulerMaruyama.weak_order) < 0.3


@pytest.mark.slow
def test_euler_maruyama_weak_order_holds_by_plain_monte_carlo_against_the_closed_form():
    theta, sigma, x0, batch = 2.0, 1.0, 4.0, 200_000
    mean_exact = x0 * math.exp(-theta)
    var_exact = sigma**2 / (2 * theta) * (1 - math.exp(-2 * theta))
    path = nct.BrownianPath(0.0, 1.0, (batch, 1), dtype=F64, seed=1)
    term, y0 = ornstein_uhlenbeck(path, theta, sigma), torch.full((batch, 1), x0, dtype=F64)
    dts = [2.0**-k for k in range(3, 7)]
    finals = [final_state(term, y0, nct.EulerMaruyama(), dt)[:, 0] for dt in dts]
    mean_errors = [abs(float(x.mean()) - mean_exact) for x in finals]
    var_errors = [abs(float(x.var()) - var_exact) for x in finals]
    assert abs(loglog_slope(dts, mean_errors) - 1.0) < 0.3
    assert abs(loglog_slope(dts, var_errors) - 1.0) < 0.3


# --- agreement with torchsde ----------------------------------------------------------------------


class _TorchsdeSDE:
    noise_type, sde_type = "diagonal", "ito"

    def f(self, t, y):
        return drift(t.expand(y.shape[0]), y, None)

    def g(self, t, y):
        return DIFFUSIONS[DIAGONAL][0](t, y, None)


def test_euler_maruyama_equals_torchsde_euler_on_the_same_brownian_increments():
    term = small_sde(DIAGONAL, ITO)
    ts = torch.linspace(0.0, 1.0, 5, dtype=F64)
    ours = nct.solve(term, y0_small(), ts, solver=nct.EulerMaruyama(), controller=nct.ConstantStep(2**-6))
    theirs = torchsde.sdeint(_TorchsdeSDE(), y0_small(), ts, bm=term.noise.brownian.interval, method="euler", dt=2**-6)
    torch.testing.assert_close(ours.ys, theirs.transpose(0, 1), rtol=1e-12, atol=1e-12)


BACKEND_PAIRS = [
    (nct.EulerMaruyama(), TorchSDE(TorchSDEMethod.EULER), ITO),
    (nct.StochasticHeun(), TorchSDE(TorchSDEMethod.HEUN), STRAT),
    (nct.ReversibleHeun(), TorchSDE(TorchSDEMethod.REVERSIBLE_HEUN), STRAT),
    (nct.Milstein(), TorchSDE(TorchSDEMethod.MILSTEIN, grad_free=True), ITO),
]
BACKEND_CASES = [
    pytest.param(ours, backend, sde_type, noise_type, id=f"{type(ours).__name__}-{noise_type.name}")
    for ours, backend, sde_type in BACKEND_PAIRS
    for noise_type in nct.NoiseType
    if noise_type in ours.noise_types
]


@pytest.mark.parametrize("ours, backend, sde_type, noise_type", BACKEND_CASES)
def test_the_torchsde_backend_equals_the_matching_neuralct_solver(ours, backend, sde_type, noise_type):
    term = small_sde(noise_type, sde_type)
    ts = torch.linspace(0.0, 1.0, 5, dtype=F64)
    a = nct.solve(term, y0_small(), ts, solver=ours, controller=nct.ConstantStep(2**-5))
    b = nct.solve(term, y0_small(), ts, solver=backend, controller=nct.ConstantStep(2**-5))
    torch.testing.assert_close(a.ys, b.ys, rtol=1e-12, atol=1e-12)
    assert b.succeeded.all() and int(b.stats.steps[0]) == 32


def test_the_torchsde_backend_accepts_a_method_name_and_rejects_an_unknown_one():
    assert TorchSDE("euler").method is TorchSDEMethod.EULER
    with pytest.raises(nct.InvalidInputError, match="`method` must be one of .*'euler'.*'reversible_heun'"):
        TorchSDE("rk4")


def test_the_torchsde_backend_refuses_per_sample_time_grids():
    term = small_sde(DIAGONAL, ITO)
    ts = torch.linspace(0.0, 1.0, 5, dtype=F64).repeat(BATCH, 1)
    ts[2, 1] = 0.3
    with pytest.raises(nct.InvalidInputError, match="one time grid `t` \\[K\\] shared by every sample; sample 2"):
        nct.solve(term, y0_small(), ts, solver=TorchSDE(), controller=nct.ConstantStep(2**-5))


def test_the_torchsde_backend_refuses_a_method_that_cannot_handle_the_sde():
    with pytest.raises(nct.IncompatibleTermError, match="TorchSDE\\(method='euler'\\).*STRATONOVICH.*heun"):
        nct.solve(
            small_sde(DIAGONAL, STRAT),
            y0_small(),
            torch.tensor([0.0, 1.0], dtype=F64),
            solver=TorchSDE(),
            controller=nct.ConstantStep(0.1),
        )


# --- noise types, compatibility and evaluation counts ---------------------------------------------


@pytest.mark.parametrize("solver, noise_type, sde_type", list(claimed_pairs()))
def test_every_solver_runs_every_noise_type_it_claims(solver, noise_type, sde_type):
    term = small_sde(noise_type, sde_type)
    ts = torch.linspace(0.0, 1.0, 3, dtype=F64)
    sol = nct.solve(term, y0_small(), ts, solver=solver, controller=nct.ConstantStep(0.1))
    assert sol.ys.shape == (BATCH, 3, STATE)
    assert torch.isfinite(sol.ys).all() and sol.succeeded.all()
    torch.testing.assert_close(sol.ys[:, 0], y0_small())


EVALS_PER_STEP = [
    (nct.EulerMaruyama(), DIAGONAL, ITO, 0, 2),
    (nct.Milstein(), DIAGONAL, ITO, 0, 3),
    (nct.Milstein(), SCALAR, STRAT, 0, 4),
    (nct.Milstein(), ADDITIVE, ITO, 0, 2),
    (nct.StochasticHeun(), GENERAL, STRAT, 0, 4),
    (nct.ReversibleHeun(), GENERAL, STRAT, 2, 2),
]


@pytest.mark.parametrize(
    "solver, noise_type, sde_type, at_init, per_step", EVALS_PER_STEP, ids=lambda v: getattr(v, "name", None)
)
def test_vf_evals_count_drift_plus_diffusion_calls(solver, noise_type, sde_type, at_init, per_step):
    sol = nct.solve(
        small_sde(noise_type, sde_type),
        y0_small(),
        torch.tensor([0.0, 1.0], dtype=F64),
        solver=solver,
        controller=nct.ConstantStep(0.125),
    )
    assert sol.stats.steps.tolist() == [8] * BATCH
    assert sol.stats.vf_evals.tolist() == [at_init + 8 * per_step] * BATCH


@pytest.mark.parametrize(
    "solver, noise_type, sde_type",
    [
        (nct.Milstein(), GENERAL, ITO),
        (nct.EulerMaruyama(), DIAGONAL, STRAT),
        (nct.StochasticHeun(), DIAGONAL, ITO),
        (nct.ReversibleHeun(), SCALAR, ITO),
    ],
    ids=["Milstein-GENERAL", "EulerMaruyama-STRATONOVICH", "StochasticHeun-ITO", "ReversibleHeun-ITO"],
)
def test_an_incompatible_solver_and_sde_raise_an_error_naming_both(solver, noise_type, sde_type):
    name = type(solver).__name__
    with pytest.raises(
        nct.IncompatibleTermError,
        match=f"{name} cannot integrate an SDETerm with .*{noise_type.name}.*{sde_type.name}",
    ) as info:
        nct.solve(
            small_sde(noise_type, sde_type),
            y0_small(),
            torch.tensor([0.0, 1.0], dtype=F64),
            solver=solver,
            controller=nct.ConstantStep(0.1),
        )
    assert "Solvers for" in str(info.value)


def test_the_incompatibility_message_lists_the_solvers_that_can():
    with pytest.raises(nct.IncompatibleTermError, match="GENERAL noise with ITO: EulerMaruyama$"):
        nct.solve(
            small_sde(GENERAL, ITO),
            y0_small(),
            torch.tensor([0.0, 1.0], dtype=F64),
            solver=nct.Milstein(),
            controller=nct.ConstantStep(0.1),
        )


def test_ode_solvers_refuse_an_sde():
    with pytest.raises(nct.IncompatibleTermError, match="Tsit5 cannot integrate an SDETerm"):
        nct.solve(small_sde(DIAGONAL, ITO), y0_small(), torch.tensor([0.0, 1.0], dtype=F64), solver=nct.Tsit5())


def test_the_pid_controller_refuses_the_fixed_step_sde_solvers():
    with pytest.raises(nct.IncompatibleTermError, match="EulerMaruyama has no error estimate"):
        nct.solve(small_sde(DIAGONAL, ITO), y0_small(), torch.tensor([0.0, 1.0], dtype=F64), solver=nct.EulerMaruyama())


def test_a_diffusion_of_the_wrong_shape_raises_an_error_naming_g():
    path = nct.BrownianPath(0.0, 1.0, (BATCH, NOISE), dtype=F64, seed=0)
    term = nct.SDETerm(nct.ODETerm(drift), nct.NoiseTerm(lambda t, y, args: y, path, GENERAL, ITO))
    with pytest.raises(
        nct.InvalidInputError, match=r"`g\(t, y, args\)` must return \[B, D, M\] = \[5, 3, 2\] .*got \[5, 3\]"
    ):
        nct.solve(
            term,
            y0_small(),
            torch.tensor([0.0, 1.0], dtype=F64),
            solver=nct.EulerMaruyama(),
            controller=nct.ConstantStep(0.1),
        )


def test_a_brownian_path_that_does_not_fit_the_state_raises_named_errors():
    wrong_batch = nct.BrownianPath(0.0, 1.0, (BATCH + 1, STATE), dtype=F64, seed=0)
    term = nct.SDETerm(nct.ODETerm(drift), nct.NoiseTerm(DIFFUSIONS[DIAGONAL][0], wrong_batch))
    with pytest.raises(nct.InvalidInputError, match="`brownian` has batch size 6"):
        nct.solve(
            term,
            y0_small(),
            torch.tensor([0.0, 1.0], dtype=F64),
            solver=nct.EulerMaruyama(),
            controller=nct.ConstantStep(0.1),
        )
    wrong_dtype = nct.BrownianPath(0.0, 1.0, (BATCH, STATE), dtype=torch.float32, seed=0)
    term = nct.SDETerm(nct.ODETerm(drift), nct.NoiseTerm(DIFFUSIONS[DIAGONAL][0], wrong_dtype))
    with pytest.raises(nct.IncompatibleTermError, match="`brownian` has dtype torch.float32"):
        nct.solve(
            term,
            y0_small(),
            torch.tensor([0.0, 1.0], dtype=F64),
            solver=nct.EulerMaruyama(),
            controller=nct.ConstantStep(0.1),
        )


def test_a_solve_outside_the_brownian_interval_raises_an_error_naming_the_interval():
    with pytest.raises(nct.InvalidInputError, match="Brownian path's interval \\[0, 1\\]"):
        nct.solve(
            small_sde(DIAGONAL, ITO),
            y0_small(),
            torch.tensor([0.0, 2.0], dtype=F64),
            solver=nct.EulerMaruyama(),
            controller=nct.ConstantStep(0.1),
        )


def test_noise_and_sde_types_must_be_enums():
    path = nct.BrownianPath(0.0, 1.0, (2, 1), seed=0)
    with pytest.raises(TypeError, match="`noise_type` must be a nct.NoiseType"):
        nct.NoiseTerm(lambda t, y, args: y, path, "diagonal")
    with pytest.raises(TypeError, match="`sde_type` must be a nct.SDEType"):
        nct.NoiseTerm(lambda t, y, args: y, path, DIAGONAL, "ito")
    with pytest.raises(TypeError, match="`drift` must be an ODETerm"):
        nct.SDETerm(nct.NoiseTerm(lambda t, y, args: y, path), nct.NoiseTerm(lambda t, y, args: y, path))


# --- Brownian path --------------------------------------------------------------------------------


def test_the_same_seed_gives_the_same_brownian_values_and_requeries_repeat_them():
    times = [(0.0, 0.25), (0.25, 0.6), (0.6, 1.0), (0.1, 0.9)]
    first, second = (nct.BrownianPath(0.0, 1.0, (4, 2), dtype=F64, seed=7) for _ in range(2))
    values = [first.increment(a, b) for a, b in times]
    for (a, b), value in zip(times, values):
        assert torch.equal(second.increment(a, b), value)
        assert torch.equal(first.increment(a, b), value)
    other = nct.BrownianPath(0.0, 1.0, (4, 2), dtype=F64, seed=8)
    assert not torch.equal(other.increment(0.0, 0.25), values[0])


def test_per_sample_brownian_increments_equal_the_shared_time_ones():
    path = nct.BrownianPath(0.0, 1.0, (4, 2), dtype=F64, seed=1)
    early, late = path.increment(0.0, 0.5), path.increment(0.5, 1.0)
    mixed = path.increment(torch.tensor([0.0, 0.5, 0.0, 0.7]), torch.tensor([0.5, 1.0, 0.5, 0.7]))
    assert torch.equal(mixed[[0, 2]], early[[0, 2]])
    assert torch.equal(mixed[1], late[1])
    assert torch.equal(mixed[3], torch.zeros(2, dtype=F64))
    assert torch.equal(path.increment(1.0, 0.5), -late)
    torch.testing.assert_close(path.evaluate(1.0), early + late)


def test_brownian_increments_have_mean_zero_and_variance_equal_to_the_time_step():
    batch = 20_000
    path = nct.BrownianPath(0.0, 2.0, (batch, 1), dtype=F64, seed=2)
    for a, b in [(0.0, 0.1), (0.3, 1.7)]:
        dw = path.increment(a, b)[:, 0]
        assert abs(float(dw.mean())) < 4 * math.sqrt((b - a) / batch)
        assert abs(float(dw.var()) / (b - a) - 1) < 4 * math.sqrt(2 / batch)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=3, max_size=3, unique=True))
def test_brownian_increments_add_up_over_adjacent_intervals(points):
    a, b, c = sorted(points)
    path = nct.BrownianPath(0.0, 1.0, (3, 2), dtype=F64, seed=11)
    torch.testing.assert_close(path.increment(a, c), path.increment(a, b) + path.increment(b, c))


def test_brownian_path_rejects_bad_arguments():
    with pytest.raises(nct.InvalidInputError, match="`t1` must be greater than `t0`"):
        nct.BrownianPath(1.0, 0.0, (2, 1))
    with pytest.raises(nct.InvalidInputError, match="`shape` must be \\(B, M\\)"):
        nct.BrownianPath(0.0, 1.0, (2,))
    with pytest.raises(nct.InvalidInputError, match="`seed` must be None or a non-negative int"):
        nct.BrownianPath(0.0, 1.0, (2, 1), seed=-1)
    path = nct.BrownianPath(0.0, 1.0, (2, 1), seed=0)
    with pytest.raises(nct.InvalidInputError, match="`ta` must be a scalar or \\[B\\] with B = 2"):
        path.increment(torch.zeros(3), 1.0)


def test_without_a_seed_the_path_follows_torch_manual_seed():
    torch.manual_seed(123)
    first = nct.BrownianPath(0.0, 1.0, (3, 1)).increment(0.0, 0.5)
    torch.manual_seed(123)
    assert torch.equal(nct.BrownianPath(0.0, 1.0, (3, 1)).increment(0.0, 0.5), first)


# --- per-sample behaviour, direction, dense output, gradients -------------------------------------


@pytest.mark.parametrize("solver", [nct.EulerMaruyama(), nct.ReversibleHeun()], ids=type)
def test_a_sample_path_is_the_same_alone_or_inside_a_batch_with_the_same_brownian_row(solver):
    batch = 4
    sde_type = ITO if isinstance(solver, nct.EulerMaruyama) else STRAT
    path = nct.BrownianPath(0.0, 1.0, (batch, 1), dtype=F64, seed=9)
    g = lambda t, y, args: 0.5 * torch.cos(y) * (1 + t[:, None])
    make = lambda p: nct.SDETerm(
        nct.ODETerm(lambda t, y, args: -y + t[:, None]), nct.NoiseTerm(g, p, DIAGONAL, sde_type)
    )
    ts = torch.tensor([[0.0, 0.3, 1.0], [0.1, 0.5, 0.9], [0.0, 0.25, 0.5], [0.2, 0.7, 1.0]], dtype=F64)
    y0 = torch.tensor([[0.5], [-1.0], [2.0], [0.0]], dtype=F64)
    together = nct.solve(make(path), y0, ts, solver=solver, controller=nct.ConstantStep(0.07))
    for b in range(batch):
        alone = nct.solve(
            make(path.rows([b])), y0[b : b + 1], ts[b : b + 1], solver=solver, controller=nct.ConstantStep(0.07)
        )
        torch.testing.assert_close(alone.ys[0], together.ys[b], rtol=0, atol=1e-14)


@pytest.mark.parametrize("solver", SDE_SOLVERS, ids=type)
def test_pure_additive_noise_reproduces_the_brownian_increment_forwards_and_backwards(solver):
    sde_type = ITO if ITO in solver.sde_types else STRAT
    path = nct.BrownianPath(0.0, 1.0, (3, 1), dtype=F64, seed=4)
    term = nct.SDETerm(
        nct.ODETerm(lambda t, y, args: 0 * y),
        nct.NoiseTerm(lambda t, y, args: torch.ones(y.shape[0], 1, 1, dtype=F64), path, ADDITIVE, sde_type),
    )
    y0 = torch.zeros(3, 1, dtype=F64)
    forward = nct.solve(
        term, y0, torch.tensor([0.0, 1.0], dtype=F64), solver=solver, controller=nct.ConstantStep(0.125)
    )
    backward = nct.solve(
        term, y0, torch.tensor([1.0, 0.0], dtype=F64), solver=solver, controller=nct.ConstantStep(0.125)
    )
    torch.testing.assert_close(forward.ys[:, -1], path.evaluate(1.0))
    torch.testing.assert_close(backward.ys[:, -1], -path.evaluate(1.0))


def test_dense_output_interpolates_linearly_between_steps():
    term = small_sde(DIAGONAL, ITO)
    sol = nct.solve(
        term,
        y0_small(),
        torch.tensor([0.0, 0.5, 1.0], dtype=F64),
        solver=nct.EulerMaruyama(),
        controller=nct.ConstantStep(0.25),
        dense=True,
    )
    mid = sol.evaluate(torch.full((BATCH,), 0.375, dtype=F64))
    start = sol.evaluate(torch.full((BATCH,), 0.25, dtype=F64))
    torch.testing.assert_close(mid, 0.5 * (start + sol.ys[:, 1]))


class _Drift(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(STATE, STATE, dtype=F64)

    def forward(self, t, y, args):
        return torch.tanh(self.linear(y))


class _Diffusion(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.full((STATE,), 0.3, dtype=F64))

    def forward(self, t, y, args):
        return self.scale * torch.sigmoid(y)


@pytest.mark.parametrize("solver", SDE_SOLVERS, ids=type)
def test_gradients_flow_through_an_sde_solve(solver):
    sde_type = ITO if ITO in solver.sde_types else STRAT
    path = nct.BrownianPath(0.0, 1.0, (BATCH, STATE), dtype=F64, seed=6)
    term = nct.SDETerm(nct.ODETerm(_Drift()), nct.NoiseTerm(_Diffusion(), path, DIAGONAL, sde_type))
    y0 = y0_small().requires_grad_()
    sol = nct.solve(term, y0, torch.linspace(0.0, 1.0, 4, dtype=F64), solver=solver, controller=nct.ConstantStep(0.1))
    (sol.ys**2).sum().backward()
    grads = [p.grad for p in term.parameters()] + [y0.grad]
    assert all(g is not None and torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads)


def test_checkpointed_backprop_gives_the_same_sde_gradients_because_brownian_queries_repeat():
    path = nct.BrownianPath(0.0, 1.0, (BATCH, STATE), dtype=F64, seed=6)
    term = nct.SDETerm(nct.ODETerm(_Drift()), nct.NoiseTerm(_Diffusion(), path, DIAGONAL, ITO))
    grads = []
    for gradient in (nct.Backprop(), nct.Backprop(checkpoint_every=3)):
        term.zero_grad()
        sol = nct.solve(term, y0_small(), torch.tensor([0.0, 1.0], dtype=F64), solver=nct.Milstein(),
                        controller=nct.ConstantStep(0.1), gradient=gradient)  # fmt: skip
        sol.ys.sum().backward()
        grads.append([p.grad.clone() for p in term.parameters()])
    for plain, checkpointed in zip(*grads):
        torch.testing.assert_close(plain, checkpointed)


def test_backsolve_refuses_an_sde():
    with pytest.raises(nct.IncompatibleTermError, match="SDETerm"):
        nct.solve(small_sde(DIAGONAL, ITO), y0_small(), torch.tensor([0.0, 1.0], dtype=F64),
                  solver=nct.EulerMaruyama(), controller=nct.ConstantStep(0.1), gradient=nct.Backsolve())  # fmt: skip


def test_float32_states_with_float64_times_solve_in_float32():
    path = nct.BrownianPath(0.0, 1.0, (BATCH, STATE), dtype=torch.float32, seed=1)
    term = nct.SDETerm(nct.ODETerm(lambda t, y, args: -y), nct.NoiseTerm(lambda t, y, args: 0.2 * y, path))
    ts = torch.linspace(0.0, 1.0, 11, dtype=F64)
    sol = nct.solve(term, y0_small().float(), ts, solver=nct.EulerMaruyama(), controller=nct.ConstantStep(0.1))
    assert sol.ys.dtype == torch.float32 and sol.succeeded.all()


def test_multiterm_is_a_deprecated_alias_of_sdeterm():
    brownian = nct.BrownianPath(0.0, 1.0, shape=(2, 1), seed=0)
    drift, noise = nct.ODETerm(lambda t, y, args: -y), nct.NoiseTerm(lambda t, y, args: 0.1 * y, brownian)
    with pytest.warns(DeprecationWarning, match="MultiTerm is now SDETerm"):
        term = nct.MultiTerm(drift, noise)
    assert isinstance(term, nct.SDETerm)

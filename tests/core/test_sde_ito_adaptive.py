"""Adaptive Itô solves by step doubling (`StepDoubling` around `Milstein`): convergence to the
closed form of geometric Brownian motion, the estimate's order, per-sample semantics, refusals."""

from __future__ import annotations

import pytest
import torch

import neuralct as nct
from neuralct import registry
from neuralct.paths import BrownianTree
from neuralct.solvers import StepDoubling

F64 = torch.float64
ITO, STRAT = nct.SDEType.ITO, nct.SDEType.STRATONOVICH
ONE = torch.tensor([0.0, 1.0], dtype=F64)
MU, SIGMA = 0.3, 0.8


def loglog_slope(xs: list[float], ys: list[float]) -> float:
    x, y = torch.tensor(xs, dtype=F64).log(), torch.tensor(ys, dtype=F64).log()
    x, y = x - x.mean(), y - y.mean()
    return float((x * y).sum() / (x * x).sum())


def gbm(path, sde_type=ITO) -> nct.SDETerm:
    """dX = MU X dt + SIGMA X dW (diagonal noise), read as `sde_type`."""
    return nct.SDETerm(
        nct.ODETerm(lambda t, y, args: MU * y),
        nct.NoiseTerm(lambda t, y, args: SIGMA * y, path, nct.NoiseType.DIAGONAL, sde_type),
    )


def ito_closed_form(path: BrownianTree) -> torch.Tensor:
    """X(1) = exp((MU - SIGMA^2 / 2) + SIGMA W(1)) from X(0) = 1, on the tree's own path."""
    return torch.exp(MU - SIGMA**2 / 2 + SIGMA * path.evaluate(1.0))


def pid(rtol: float) -> nct.PIDController:
    return nct.PIDController(rtol=rtol, atol=rtol)


def adaptive_errors(solver, path: BrownianTree, rtols: list[float]) -> tuple[list[float], list[float]]:
    """Mean |X(1) - closed form| and mean accepted steps of adaptive solves of Itô GBM."""
    y0, exact = torch.ones(path.shape[0], 1, dtype=F64), ito_closed_form(path)
    errors, steps = [], []
    for rtol in rtols:
        sol = nct.solve(gbm(path), y0, ONE, solver=solver, controller=pid(rtol))
        errors.append(float((sol.ys[:, -1] - exact).abs().mean()))
        steps.append(float(sol.stats.accepted.double().mean()))
    return errors, steps


def test_adaptive_milstein_converges_to_the_ito_closed_form_of_geometric_brownian_motion():
    path = BrownianTree(0.0, 1.0, (256, 1), dtype=F64, seed=1)
    errors, steps = adaptive_errors(StepDoubling(nct.Milstein()), path, [1e-2, 1e-3, 1e-4])
    # Measured 4.3e-2, 2.3e-2, 9.5e-3 with 5.4, 14, 60 accepted steps: the error falls as
    # steps^-0.62 (seeds 1 to 3: -0.62 to -0.65), slower than fixed steps (as many uniform
    # Milstein steps: 6.5e-2, 3.0e-2, 6.5e-3, slope -0.93). Reusing the first half's increment
    # for the second makes it grow (0.69, 0.85, 1.7).
    assert errors[0] > errors[1] > errors[2]
    assert -0.85 < loglog_slope(steps, errors) < -0.45
    assert 3e-3 < errors[-1] < 2e-2


def test_doubled_euler_maruyama_would_converge_to_another_limit_which_is_why_it_is_refused():
    path = BrownianTree(0.0, 1.0, (256, 1), dtype=F64, seed=1)
    doubled_euler = object.__new__(StepDoubling)  # past the refusal, to show what it guards against
    object.__setattr__(doubled_euler, "solver", nct.EulerMaruyama())
    errors, steps = adaptive_errors(doubled_euler, path, [1e-2, 1e-3])
    # Measured 0.18 and 0.19 with 10 and 71 steps (0.21 with 686 at rtol 1e-4), while 64 uniform
    # steps of Euler-Maruyama on the same paths err by 0.06.
    assert steps[1] > 5 * steps[0]
    assert min(errors) > 0.1
    y0 = torch.ones(256, 1, dtype=F64)
    fixed = nct.solve(gbm(path), y0, ONE, solver=nct.EulerMaruyama(), controller=nct.ConstantStep(1 / 64)).ys[:, -1]
    assert float((fixed - ito_closed_form(path)).abs().mean()) < errors[1] / 2


def test_two_tolerances_see_one_realisation_of_the_brownian_motion():
    batch, seed = 64, 3
    y0 = torch.ones(batch, 1, dtype=F64)
    # A fresh tree with the same seed each time: the path is the seed's, not the queries'.
    loose, tight = (
        nct.solve(
            gbm(BrownianTree(0.0, 1.0, (batch, 1), dtype=F64, seed=seed)),
            y0,
            ONE,
            solver=StepDoubling(),
            controller=pid(rtol),
        ).ys[:, -1]
        for rtol in (1e-3, 1e-4)
    )
    exact = ito_closed_form(BrownianTree(0.0, 1.0, (batch, 1), dtype=F64, seed=seed))
    # Both near the closed form on the same path (another path would put them about 0.5 apart).
    assert float((loose - exact).abs().mean()) < 4e-2
    assert float((tight - exact).abs().mean()) < 2e-2
    assert float((tight - loose).abs().mean()) < 4e-2


def test_an_adaptive_doubled_sample_is_the_same_alone_or_in_a_batch():
    batch, seed = 4, 6
    y0 = torch.tensor([[0.5], [2.0], [1.0], [0.1]], dtype=F64)
    ts = torch.tensor([[0.0, 0.4, 1.0], [0.1, 0.5, 0.9], [0.0, 0.25, 0.5], [0.2, 0.7, 1.0]], dtype=F64)
    tree = BrownianTree(0.0, 1.0, (batch, 1), dtype=F64, seed=seed)
    together = nct.solve(gbm(tree), y0, ts, solver=StepDoubling(), controller=pid(1e-3))
    assert bool((together.stats.rejected > 0).any())
    for b in range(batch):
        alone = nct.solve(
            gbm(tree.rows([b])), y0[b : b + 1], ts[b : b + 1], solver=StepDoubling(), controller=pid(1e-3)
        )
        torch.testing.assert_close(alone.ys[0], together.ys[b], rtol=0, atol=1e-14)
        assert int(alone.stats.steps[0]) == int(together.stats.steps[b])
        assert int(alone.stats.rejected[0]) == int(together.stats.rejected[b])


@pytest.mark.parametrize(("sde_type", "evals"), [(ITO, 7), (STRAT, 10)], ids=["ito", "stratonovich"])
def test_constant_steps_of_step_doubling_are_the_wrapped_method_on_half_steps(sde_type, evals):
    path = BrownianTree(0.0, 1.0, (8, 1), dtype=F64, seed=2)
    y0 = torch.ones(8, 1, dtype=F64)
    doubled = nct.solve(gbm(path, sde_type), y0, ONE, solver=StepDoubling(), controller=nct.ConstantStep(1 / 16))
    halves = nct.solve(gbm(path, sde_type), y0, ONE, solver=nct.Milstein(), controller=nct.ConstantStep(1 / 32))
    torch.testing.assert_close(doubled.ys, halves.ys, rtol=0, atol=1e-14)
    # The whole step shares the start's drift and diffusion with the first half step.
    assert doubled.stats.vf_evals.tolist() == [16 * evals] * 8


@pytest.mark.parametrize(
    ("sde_type", "noise"),
    [(ITO, nct.NoiseType.DIAGONAL), (STRAT, nct.NoiseType.DIAGONAL), (ITO, nct.NoiseType.SCALAR)],
    ids=["ito-diagonal", "stratonovich-diagonal", "ito-scalar"],
)
def test_the_doubling_estimate_scales_as_h_to_the_error_order_plus_one(sde_type, noise):
    batch, state = 2000, 1 if noise == nct.NoiseType.DIAGONAL else 2
    path = BrownianTree(0.0, 1.0, (batch, 1), dtype=F64, seed=4)
    field = (lambda t, y, args: SIGMA * y) if state == 1 else (lambda t, y, args: SIGMA * y.unsqueeze(-1))
    term = nct.SDETerm(nct.ODETerm(lambda t, y, args: MU * y), nct.NoiseTerm(field, path, noise, sde_type))
    solver, t0, y0 = StepDoubling(), torch.zeros(batch, dtype=F64), torch.ones(batch, state, dtype=F64)
    hs = [2**-k for k in (4, 6, 8, 10)]
    sizes = [
        float(solver.step(term, t0, y0, torch.full((batch,), h, dtype=F64), (), None, False).error.abs().mean())
        for h in hs
    ]
    # Measured 1.53 on Itô GBM; the dW^2 terms of Milstein cancel between the whole and the half steps.
    assert solver.error_order + 1 == 1.5
    assert abs(loglog_slope(hs, sizes) - 1.5) < 0.15


@pytest.mark.parametrize(
    "inner",
    [nct.EulerMaruyama(), nct.StochasticHeun(), StepDoubling(), "milstein"],
    ids=["euler-maruyama", "adaptive", "nested", "string"],
)
def test_step_doubling_refuses_a_solver_it_cannot_wrap_naming_the_argument(inner):
    with pytest.raises(nct.IncompatibleTermError, match="`solver` must be an explicit SDE method of strong order >= 1"):
        StepDoubling(inner)


def test_the_euler_maruyama_refusal_says_why():
    with pytest.raises(nct.IncompatibleTermError, match=r"\(Milstein\); got EulerMaruyama \(order 0.5 on steps chosen"):
        StepDoubling(nct.EulerMaruyama())


def test_step_doubling_refuses_general_noise_through_the_wrapped_method():
    path = BrownianTree(0.0, 1.0, (2, 2), dtype=F64, seed=0)
    field = nct.NoiseTerm(lambda t, y, args: torch.ones(2, 2, 2, dtype=F64), path, nct.NoiseType.GENERAL, ITO)
    term = nct.SDETerm(nct.ODETerm(lambda t, y, args: -y), field)
    with pytest.raises(
        nct.IncompatibleTermError, match="Milstein cannot integrate .*GENERAL noise with ITO: EulerMaruyama"
    ):
        nct.solve(term, torch.ones(2, 2, dtype=F64), ONE, solver=StepDoubling(), controller=pid(1e-3))


def test_adaptive_step_doubling_refuses_a_brownian_grid_before_stepping():
    grid = nct.BrownianGrid(torch.linspace(0, 1, 17, dtype=F64), (2, 1), seed=0)
    with pytest.raises(
        nct.IncompatibleTermError, match="StepDoubling with an adaptive controller cannot use a BrownianGrid"
    ):
        nct.solve(gbm(grid), torch.ones(2, 1, dtype=F64), ONE, solver=StepDoubling(), controller=pid(1e-3))


def test_an_explicit_solver_without_estimate_names_step_doubling_when_it_can_wrap_it():
    term = gbm(BrownianTree(0.0, 1.0, (2, 1), dtype=F64, seed=0))
    with pytest.raises(
        nct.IncompatibleTermError,
        match=r"adaptive SDE solvers: SRA1, StochasticHeun, or nct.StepDoubling\(nct.Milstein\(\)\)",
    ):
        nct.Milstein().check_adaptive_term(term)
    with pytest.raises(nct.IncompatibleTermError, match="adaptive SDE solvers: SRA1, StochasticHeun$"):
        nct.EulerMaruyama().check_adaptive_term(term)
    # Through `solve`, the SDE solver's message comes before PIDController's generic one (which
    # would suggest an ODE solver such as Tsit5).
    with pytest.raises(nct.IncompatibleTermError, match=r"or nct.StepDoubling\(nct.Milstein\(\)\)"):
        nct.solve(term, torch.ones(2, 1, dtype=F64), ONE, solver=nct.Milstein(), controller=pid(1e-3))


def test_the_registry_builds_step_doubling_around_milstein():
    assert registry.solver("step_doubling") == StepDoubling(nct.Milstein())
    assert registry.solver("step_doubling", solver="milstein").error_order == 0.5

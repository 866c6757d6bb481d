"""`solve(..., compile=True)`: the step under `torch.compile` gives the eager step's results
(values, gradients, dense output, statuses), compiles once per configuration, and is refused
for solvers whose steps are not fixed tensor arithmetic."""

from __future__ import annotations

import shutil

import pytest
import torch

import neuralct as nct
from neuralct.errors import InvalidInputError

pytestmark = pytest.mark.skipif(
    shutil.which("g++") is None and shutil.which("clang++") is None,
    reason="torch.compile on CPU needs a C++ compiler",
)

F64 = torch.float64


@pytest.fixture(autouse=True)
def fresh_compile_cache():
    """Each test starts with nothing compiled, so no test depends on another's graphs or
    on torch's limit of compiled variants per function."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


class Field(torch.nn.Module):
    """MLP 3 -> 16 -> 3 with a time input, float64."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3)).double()

    def forward(self, t: torch.Tensor, y: torch.Tensor, args: object = None) -> torch.Tensor:
        return self.net(torch.cat([y, torch.sin(t)[:, None]], dim=1))


def grads(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in module.parameters()])


def both(run):
    """`run(compile)` eagerly and compiled."""
    return run(False), run(True)


def test_adaptive_solve_matches_eager_and_reference():
    field = Field()
    y0 = torch.randn(8, 3, dtype=F64)
    ts = torch.rand(8, 6, dtype=F64).cumsum(dim=1)  # per-sample save times
    controller = nct.PIDController(rtol=1e-9, atol=1e-11)
    with torch.no_grad():
        eager, compiled = both(lambda c: nct.solve(nct.ODETerm(field), y0, ts, controller=controller, compile=c))
        tight = nct.PIDController(rtol=1e-13, atol=1e-13)
        reference = nct.solve(nct.ODETerm(field), y0, ts, solver=nct.Dopri8(), controller=tight)
    assert bool(compiled.succeeded.all())
    # Fused arithmetic rounds differently, so an error ratio near 1 may be decided the other
    # way: the two agree to the tolerance, not bit for bit.
    assert torch.allclose(compiled.ys, eager.ys, rtol=0, atol=1e-8)
    assert torch.allclose(compiled.ys, reference.ys, rtol=0, atol=1e-8)
    assert (compiled.stats.steps - eager.stats.steps).abs().max() <= 1


def test_no_recompilation_for_new_values_of_the_same_shapes():
    field = Field()
    controller = nct.PIDController(rtol=1e-6, atol=1e-8)

    def run(seed: int) -> nct.Solution:
        generator = torch.Generator().manual_seed(seed)
        y0 = torch.randn(8, 3, dtype=F64, generator=generator)
        ts = torch.linspace(0.0, 1.0 + seed, 5, dtype=F64)
        with torch.no_grad():
            return nct.solve(nct.ODETerm(field), y0, ts, controller=controller, compile=True)

    run(0)
    with torch.compiler.set_stance("fail_on_recompile"):
        solution = run(1)  # a new term object, state, save times and time span
    assert bool(solution.succeeded.all())


@pytest.mark.parametrize("gradient", [nct.Backprop(), nct.Backprop(checkpoint_every=2), nct.Backsolve()])
def test_gradients_match_eager(gradient):
    field = Field()
    y0 = torch.randn(4, 3, dtype=F64, requires_grad=True)
    ts = torch.linspace(0.0, 2.0, 5, dtype=F64)
    controller = nct.PIDController(rtol=1e-9, atol=1e-11)

    def run(compile: bool) -> tuple[torch.Tensor, torch.Tensor]:
        field.zero_grad()
        y0.grad = None
        solution = nct.solve(nct.ODETerm(field), y0, ts, controller=controller, gradient=gradient, compile=compile)
        solution.ys.square().sum().backward()
        return grads(field), y0.grad.clone()

    (eager_params, eager_y0), (params, dy0) = both(run)
    assert torch.allclose(params, eager_params, rtol=1e-6, atol=1e-9)
    assert torch.allclose(dy0, eager_y0, rtol=1e-6, atol=1e-9)


def test_fixed_step_controlled_equation_over_knots_matches_eager():
    """RK4 over a linear control path: jump times (its knots) are landed on inside the
    compiled step, and the dense output is read back."""
    generator = torch.Generator().manual_seed(3)
    times = torch.rand(4, 12, dtype=F64, generator=generator).cumsum(dim=1)
    values = torch.randn(4, 12, 2, dtype=F64, generator=generator)
    readout = torch.nn.Linear(3, 6).double()
    term = nct.ControlTerm(lambda t, z, args: torch.tanh(readout(z)).reshape(-1, 3, 2), nct.LinearPath(values, times))
    z0 = torch.zeros(4, 3, dtype=F64)
    with torch.no_grad():
        eager, compiled = both(
            lambda c: nct.solve(
                term, z0, times, solver=nct.RK4(), controller=nct.ConstantStep(0.05), dense=True, compile=c
            )
        )
        middle = (times[:, 4] + times[:, 5]) / 2
        assert torch.allclose(compiled.evaluate(middle), eager.evaluate(middle), rtol=0, atol=1e-12)
    assert torch.allclose(compiled.ys, eager.ys, rtol=0, atol=1e-12)
    assert torch.equal(compiled.stats.steps, eager.stats.steps)


def test_a_failing_sample_gets_the_same_status():
    """A sample that blows up fails as NONFINITE with its batch mates unaffected, compiled too."""
    scale = torch.tensor([[1.0], [40.0]], dtype=F64)
    term = nct.ODETerm(lambda t, y, args: scale * y * y)  # y' = k y^2 blows up at t = 1 / (k y0)
    y0 = torch.ones(2, 1, dtype=F64)
    ts = torch.linspace(0.0, 0.5, 3, dtype=F64)
    with torch.no_grad():
        eager, compiled = both(
            lambda c: nct.solve(term, y0, ts, controller=nct.PIDController(1e-6, 1e-8), throw=False, compile=c)
        )
    assert torch.equal(compiled.status, eager.status)
    assert int(compiled.status[0]) == int(nct.Status.SUCCESS) and int(compiled.status[1]) != int(nct.Status.SUCCESS)
    assert torch.allclose(compiled.ys[0], eager.ys[0], rtol=1e-6)


@pytest.mark.parametrize(
    "solver",
    [nct.ImplicitEuler(), nct.MethodOfSteps(nct.Tsit5()), nct.EulerMaruyama(), nct.TorchDiffEq("dopri5")],
    ids=["implicit", "method-of-steps", "sde", "backend"],
)
def test_refused_for_solvers_that_are_not_explicit_runge_kutta(solver):
    with pytest.raises(InvalidInputError, match=f"compile=True.*{type(solver).__name__}"):
        nct.solve(
            nct.ODETerm(lambda t, y, args: -y),
            torch.ones(2, 1),
            torch.linspace(0.0, 1.0, 3),
            solver=solver,
            controller=nct.ConstantStep(0.1),
            compile=True,
        )


def test_compile_must_be_a_bool():
    with pytest.raises(InvalidInputError, match="`compile` must be True or False"):
        nct.solve(nct.ODETerm(lambda t, y, args: -y), torch.ones(2, 1), torch.linspace(0.0, 1.0, 3), compile="yes")


def test_a_new_batch_size_compiles_once_more_then_no_longer():
    field = Field()

    def run(batch: int) -> nct.Solution:
        with torch.no_grad():
            return nct.solve(
                nct.ODETerm(field),
                torch.ones(batch, 3, dtype=F64),
                torch.linspace(0.0, 1.0, 3, dtype=F64),
                compile=True,
            )

    run(4)
    run(6)  # compiles again, the batch size now symbolic
    with torch.compiler.set_stance("fail_on_recompile"):
        assert run(9).ys.shape == (9, 3, 3)

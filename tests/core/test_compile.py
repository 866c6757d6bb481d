"""`solve(..., compile=True)`: the step under `torch.compile` gives the eager step's results
(values, gradients, dense output, statuses), compiles once per configuration, and is refused
for solvers whose steps are not fixed tensor arithmetic."""

from __future__ import annotations

import shutil

import pytest
import torch

import neuralct as nct
from neuralct.errors import InvalidInputError
from neuralct.models.hamiltonian import SeparableHamiltonianTerm, SymplecticEuler
from neuralct.models.ltc import LTCField, LTCFused, LTCTerm

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


@pytest.mark.parametrize(
    "gradient", [nct.Backprop(), nct.Backprop(checkpoint_every=2), nct.Backsolve(), nct.Backsolve(seminorm=True)]
)
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


@pytest.mark.parametrize("seminorm", [False, True])
def test_backsolve_of_a_controlled_equation_compiles_to_the_same_accuracy(seminorm):
    """A `ControlTerm` holds each sample's path, so its full-norm VJPs are the batched ones,
    which cannot be traced: those backward steps stay eager; the seminorm's compile. Steps near
    the spline's knots are decided differently after compiled rounding (346 steps against 334),
    so both solves are held to a tight backprop reference rather than to each other: about 2e-7
    apart from it, norm-wise, either way."""
    torch.manual_seed(0)
    times = torch.linspace(0.0, 1.0, 12, dtype=F64)
    path = nct.CubicPath.natural(torch.randn(4, 12, 2, dtype=F64), times)
    linear = torch.nn.Linear(3, 6).double()

    class Field(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = linear

        def forward(self, t: torch.Tensor, z: torch.Tensor, args: object = None) -> torch.Tensor:
            return torch.tanh(self.linear(z)).view(z.shape[0], 3, 2)

    field, z0 = Field(), torch.randn(4, 3, dtype=F64, requires_grad=True)

    def run(compile: bool, gradient: nct.AbstractGradient, tol: float = 1e-9) -> torch.Tensor:
        field.zero_grad()
        z0.grad = None
        controller = nct.PIDController(rtol=tol, atol=tol)
        term = nct.ControlTerm(field, path)
        solution = nct.solve(term, z0, times[[0, -1]], controller=controller, gradient=gradient, compile=compile)
        solution.ys.square().sum().backward()
        return torch.cat([grads(field), z0.grad.flatten()])

    reference = run(False, nct.Backprop(), tol=1e-12)
    for compile in (False, True):
        error = (run(compile, nct.Backsolve(seminorm=seminorm)) - reference).norm() / reference.norm()
        assert error < 1e-6


def test_backsolve_compiles_its_per_sample_vjps_and_falls_back_to_eager_ones():
    from neuralct.gradients._adjoint_field import AdjointSystem

    field = Field()
    y0 = torch.randn(4, 3, dtype=F64)
    t0 = torch.zeros(4, dtype=F64)
    compiled = AdjointSystem(nct.ODETerm(field), None, y0.shape[1:], compile=True)
    compiled.probe(t0, y0)
    assert compiled.mode == "vmap" and compiled._per_sample_vjp is not compiled._eager_vjp
    a = torch.randn(4, 3, dtype=F64)
    for ours, eager in zip(compiled._vjp_vmap(t0, y0, a), compiled._eager_vjp(compiled.inputs, t0, y0, a)):
        for x, y in zip(ours if isinstance(ours, tuple) else (ours,), eager if isinstance(eager, tuple) else (eager,)):
            assert torch.allclose(x, y, rtol=1e-12, atol=1e-12)

    def broken(*args):
        raise RuntimeError("cannot compile")

    fallback = AdjointSystem(nct.ODETerm(field), None, y0.shape[1:], compile=True)
    fallback._per_sample_vjp = broken
    fallback.probe(t0, y0)
    assert fallback.mode == "vmap" and fallback._per_sample_vjp is fallback._eager_vjp


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


@pytest.mark.parametrize("solver", [nct.ImplicitEuler(), nct.TorchDiffEq("dopri5")], ids=["implicit", "backend"])
def test_refused_for_solvers_whose_steps_are_not_fixed_tensor_arithmetic(solver):
    with pytest.raises(InvalidInputError, match=f"compile=True.*{type(solver).__name__}"):
        nct.solve(
            nct.ODETerm(lambda t, y, args: -y),
            torch.ones(2, 1),
            torch.linspace(0.0, 1.0, 3),
            solver=solver,
            controller=nct.ConstantStep(0.1),
            compile=True,
        )


def test_refused_for_an_sde_whose_brownian_motion_is_not_a_grid():
    brownian = nct.BrownianPath(0.0, 1.0, (2, 1), seed=0)
    term = nct.SDETerm(nct.ODETerm(lambda t, y, args: -y), nct.NoiseTerm(lambda t, y, args: y, brownian))
    with pytest.raises(InvalidInputError, match="compile=True.*EulerMaruyama compiles with a BrownianGrid only.*Path"):
        nct.solve(
            term,
            torch.ones(2, 1),
            torch.linspace(0.0, 1.0, 3),
            solver=nct.EulerMaruyama(),
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


# ------------------------------------------------ SDEs on a grid, the method of steps, step maps


def sde_solve(solver: nct.AbstractSDESolver, seed: int, compile: bool) -> tuple[nct.Solution, torch.Tensor]:
    """A neural SDE (MLP drift, diagonal noise `0.3 y`) by `solver` on a BrownianGrid, stepping
    every second grid time; returns the solution and the gradient of its
    outputs' squares with respect to the drift's parameters and `y0`, `[P + B * 3]`."""
    field = Field()
    generator = torch.Generator().manual_seed(seed)
    brownian = nct.BrownianGrid(torch.linspace(0.0, 1.0, 41, dtype=F64), (4, 3), seed=seed)
    sde_type = nct.SDEType.ITO if isinstance(solver, (nct.EulerMaruyama, nct.Milstein)) else nct.SDEType.STRATONOVICH
    noise = nct.NoiseTerm(lambda t, y, args: 0.3 * y, brownian, sde_type=sde_type)
    y0 = torch.randn(4, 3, dtype=F64, generator=generator, requires_grad=True)
    save = torch.linspace(0.0, 1.0, 6, dtype=F64)
    solution = nct.solve(
        nct.SDETerm(nct.ODETerm(field), noise),
        y0,
        save,
        solver=solver,
        controller=nct.ConstantStep(0.05),
        compile=compile,
    )
    gradients = torch.autograd.grad(solution.ys.square().sum(), [*field.parameters(), y0])
    return solution, torch.cat([g.flatten() for g in gradients])


SDE_SOLVERS = [
    nct.EulerMaruyama(),
    pytest.param(nct.Milstein(), marks=pytest.mark.slow),
    pytest.param(nct.StochasticHeun(), marks=pytest.mark.slow),
    pytest.param(nct.ReversibleHeun(), marks=pytest.mark.slow),
]


@pytest.mark.parametrize("solver", SDE_SOLVERS, ids=lambda solver: type(solver).__name__)
def test_fixed_step_sde_on_a_brownian_grid_matches_eager_and_compiles_once(solver):
    (eager, eager_grads), (compiled, grads) = both(lambda c: sde_solve(solver, 0, c))
    assert torch.equal(compiled.status, eager.status) and bool(compiled.succeeded.all())
    assert torch.equal(compiled.stats.steps, eager.stats.steps) and torch.equal(
        compiled.stats.steps[0], torch.tensor(20)
    )
    assert torch.allclose(compiled.ys, eager.ys, rtol=1e-12, atol=1e-12)
    assert torch.allclose(grads, eager_grads, rtol=1e-6, atol=1e-9)
    with torch.compiler.set_stance("fail_on_recompile"):
        again, _ = sde_solve(solver, 1, True)  # a new path, state and field
    assert not torch.allclose(again.ys, compiled.ys)


def _sde_with_a_blow_up(compile: bool, seed: int = 0) -> tuple[nct.Solution, torch.Tensor]:
    """Euler-Maruyama over 200 steps on a `BrownianGrid` for 4 samples; sample 2's diffusion turns
    infinite from t = 0.5 on. Returns the solution and the gradient of its final states' square
    sum with respect to `y0`."""
    grid = torch.linspace(0.0, 1.0, 201, dtype=F64)
    brownian = nct.BrownianGrid(grid, (4, 3), seed=seed)
    rates = torch.tensor([[0.5], [1.0], [2.0], [3.0]], dtype=F64)

    def diffusion(t, y, args):
        bad = (t >= 0.5) & (torch.arange(4) == 2)
        return torch.where(bad[:, None], torch.inf, 0.3 * torch.cos(y))

    term = nct.SDETerm(nct.ODETerm(lambda t, y, args: -args * y), nct.NoiseTerm(diffusion, brownian))
    y0 = torch.ones(4, 3, dtype=F64, requires_grad=True)
    solution = nct.solve(
        term,
        y0,
        torch.tensor([0.0, 1.0], dtype=F64),
        solver=nct.EulerMaruyama(),
        controller=nct.ConstantStep(0.005),
        args=rates,
        compile=compile,
        throw=False,
    )
    (gradient,) = torch.autograd.grad(solution.y_final.square().sum(), y0)
    return solution, gradient


def test_compiled_strides_take_several_steps_a_call_and_match_eager(monkeypatch):
    """Under a `ConstantStep` the steps of a stride run `STRIDE_CHUNK` to a compiled call. Values,
    gradients, statuses and statistics are the eager solve's, the sample whose state blows up
    included (its stride is discarded and run again step by step), and new values of the same
    shapes compile nothing new."""
    import neuralct._loop.compile as compile_module

    sizes = []
    original = compile_module._compiled_runs

    def counted(left):
        size, run = original(left)
        sizes.append(size)
        return size, run

    monkeypatch.setattr(compile_module, "_compiled_runs", counted)
    (eager, eager_gradient), (compiled, gradient) = both(_sde_with_a_blow_up)
    assert compiled.status.tolist() == eager.status.tolist() == [0, 0, int(nct.Status.NONFINITE), 0]
    assert torch.equal(compiled.t_final, eager.t_final)
    assert torch.allclose(compiled.y_final, eager.y_final, rtol=0, atol=1e-12)
    assert torch.allclose(gradient, eager_gradient, rtol=1e-10, atol=1e-12)
    assert torch.equal(compiled.stats.steps, eager.stats.steps)
    assert torch.equal(compiled.stats.vf_evals, eager.stats.vf_evals)
    assert sizes.count(compile_module.STRIDE_CHUNK) >= 10
    with torch.compiler.set_stance("fail_on_recompile"):
        _sde_with_a_blow_up(True, seed=1)


def test_a_compiled_step_off_the_brownian_grid_is_refused_on_the_device():
    brownian = nct.BrownianGrid(torch.linspace(0.0, 1.0, 11, dtype=F64), (2, 1), seed=0)
    term = nct.SDETerm(nct.ODETerm(lambda t, y, args: -y), nct.NoiseTerm(lambda t, y, args: y, brownian))
    with pytest.raises(RuntimeError, match="`ta` and `tb` must be times of the BrownianGrid's grid"):
        nct.solve(
            term,
            torch.ones(2, 1, dtype=F64),
            torch.linspace(0.0, 1.0, 3, dtype=F64),
            solver=nct.EulerMaruyama(),
            controller=nct.ConstantStep(0.03),
            compile=True,
        )


class DelayedField(torch.nn.Module):
    """$f(t, y, y(t - 1)) = \\tanh(W [y, y(t - 1)])$, state 2, float64."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.linear = torch.nn.Linear(4, 2).double()

    def forward(self, t: torch.Tensor, y: torch.Tensor, delayed: torch.Tensor, args: object = None) -> torch.Tensor:
        return torch.tanh(self.linear(torch.cat([y, delayed[:, 0]], dim=1)))


@pytest.mark.parametrize(
    "solver, controller",
    [
        pytest.param(nct.MethodOfSteps(nct.RK4(), chunk_size=4), nct.ConstantStep(0.1), marks=pytest.mark.slow),
        pytest.param(nct.MethodOfSteps(), nct.PIDController(1e-8, 1e-10), marks=pytest.mark.slow),
    ],
    ids=["rk4", "tsit5-adaptive"],
)
def test_method_of_steps_matches_eager_with_its_history_looked_up_eagerly(solver, controller):
    field = DelayedField()
    history = torch.nn.Parameter(torch.tensor([[0.5, -0.2]], dtype=F64).expand(3, 2).clone())
    ts = torch.linspace(0.0, 3.5, 8, dtype=F64)  # over three delays: lookups in the solution's steps

    def run(compile: bool) -> tuple[nct.Solution, torch.Tensor]:
        term = nct.DelayTerm(field, [1.0], history)
        solution = nct.solve(term, history.detach().clone(), ts, solver=solver, controller=controller, compile=compile)
        gradients = torch.autograd.grad(solution.ys.square().sum(), [*field.parameters(), history])
        return solution, torch.cat([g.flatten() for g in gradients])

    (eager, eager_grads), (compiled, grads) = both(run)
    assert torch.equal(compiled.status, eager.status) and bool(compiled.succeeded.all())
    assert (compiled.stats.steps - eager.stats.steps).abs().max() <= 1
    assert torch.allclose(compiled.ys, eager.ys, rtol=0, atol=1e-9)
    assert torch.allclose(grads, eager_grads, rtol=1e-6, atol=1e-9)
    with torch.compiler.set_stance("fail_on_recompile"):
        run(True)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["ltc", "hamiltonian"])
def test_step_maps_match_eager(model):
    """The LTC fused step (over the knots of a held input) and symplectic Euler, compiled."""
    torch.manual_seed(2)
    ts = torch.rand(3, 7, dtype=F64).add(0.2).cumsum(dim=1)
    if model == "ltc":
        path = nct.PiecewiseConstantPath(torch.randn(3, 7, 2, dtype=F64), ts)
        term = LTCTerm(LTCField(2, 5).double(), path)
        solver, controller, y0 = LTCFused(6), nct.KnotToKnot(), torch.zeros(3, 5, dtype=F64)
    else:
        term = SeparableHamiltonianTerm(2, layers=4, span=float(ts.max())).double()
        solver, controller, y0 = SymplecticEuler(), nct.ConstantStep(0.1), torch.randn(3, 4, dtype=F64)

    def run(compile: bool) -> tuple[nct.Solution, torch.Tensor]:
        solution = nct.solve(term, y0, ts, solver=solver, controller=controller, compile=compile)
        gradients = torch.autograd.grad(solution.ys.square().sum(), list(term.parameters()))
        return solution, torch.cat([g.flatten() for g in gradients])

    (eager, eager_grads), (compiled, grads) = both(run)
    assert torch.equal(compiled.status, eager.status) and torch.equal(compiled.stats.steps, eager.stats.steps)
    assert torch.allclose(compiled.ys, eager.ys, rtol=1e-12, atol=1e-12)
    assert torch.allclose(grads, eager_grads, rtol=1e-6, atol=1e-9)
    with torch.compiler.set_stance("fail_on_recompile"):
        run(True)

"""Hamiltonian DNNs: the symplectic Euler step is symplectic, H2 gradients cannot vanish, energy stays
bounded, the step converges at order 1, bad input is refused, and an H2 net learns double circles."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

import neuralct as nct
from neuralct import registry
from neuralct.errors import IncompatibleTermError, InvalidInputError
from neuralct.models.hamiltonian import HamiltonianNet, HamiltonianTerm, SeparableHamiltonianTerm, SymplecticEuler

F64 = torch.float64


def j_matrix(n: int) -> torch.Tensor:
    """$J = [[0, I], [-I, 0]]$ `[2n, 2n]`, the convention of `neuralct.models.hamiltonian`."""
    eye, zero = torch.eye(n, dtype=F64), torch.zeros(n, n, dtype=F64)
    return torch.cat([torch.cat([zero, eye], 1), torch.cat([-eye, zero], 1)], 0)


def one_step(solver: nct.AbstractSolver, term, t0: float, h: float):
    """The map `y [1, 2n] -> y1 [1, 2n]` of one step of `solver` from `t0` with step `h`."""

    def step(y: torch.Tensor) -> torch.Tensor:
        t = torch.full((1,), t0, dtype=F64)
        carry, _ = solver.init(term, t, y, None)
        return solver.step(term, t, y, torch.full((1,), h, dtype=F64), carry, None, False).y1

    return step


def symplectic_defect(m: torch.Tensor, n: int) -> float:
    """$\\max |M^\\top J M - J|$ for a `[2n, 2n]` Jacobian."""
    j = j_matrix(n)
    return float((m.T @ j @ m - j).abs().max())


# --- 1. the step map is symplectic --------------------------------------------------------


@pytest.mark.parametrize("h", [0.1, 0.25, 0.5])
def test_symplectic_euler_step_preserves_the_symplectic_form_and_forward_euler_does_not(h):
    n = 3
    term = SeparableHamiltonianTerm(n, layers=4, span=2.0).to(F64)
    for t0 in (0.0, 0.7, 1.6):  # three different layers
        y = torch.randn(1, 2 * n, dtype=F64)
        symplectic = torch.autograd.functional.jacobian(one_step(SymplecticEuler(), term, t0, h), y)
        forward = torch.autograd.functional.jacobian(one_step(nct.Euler(), term, t0, h), y)
        assert symplectic_defect(symplectic.reshape(2 * n, 2 * n), n) < 1e-10
        # Forward Euler: M^T J M - J = h^2 S J S with S the Hessian of H, well above roundoff.
        assert symplectic_defect(forward.reshape(2 * n, 2 * n), n) > 1e-4


# --- 2. H2 gradients cannot vanish --------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_h2_network_jacobian_has_spectral_norm_at_least_one(seed):
    torch.manual_seed(seed)
    net = HamiltonianNet(4, 2, kind="H2", features=2, layers=64, step=0.1).to(F64)
    y0 = torch.randn(1, 4, dtype=F64)
    jac = torch.autograd.functional.jacobian(net.propagate, y0).reshape(4, 4)
    singular = torch.linalg.svdvals(jac)
    assert float(singular[0]) >= 1 - 1e-9
    # The whole network map is symplectic: singular values pair up as (s, 1/s), volume is kept.
    assert symplectic_defect(jac, 2) < 1e-9
    assert float(singular[0] * singular[-1]) == pytest.approx(1.0, abs=1e-9)
    assert float(torch.linalg.det(jac)) == pytest.approx(1.0, abs=1e-9)


# --- 3. energy: bounded for symplectic Euler, drifting for forward Euler -------------------


def energies(solver: nct.AbstractSolver, term: SeparableHamiltonianTerm, y0: torch.Tensor, h: float, steps: int):
    """`[B, steps + 1]` energy after each step of the solver's step map, batched over the samples of `y0`."""
    t = torch.zeros(y0.shape[0], dtype=F64)
    dt = torch.full_like(t, h)
    carry, _ = solver.init(term, t, y0, None)
    ys, y = [y0], y0
    for _ in range(steps):
        out = solver.step(term, t, y, dt, carry, None, False)
        y, carry = out.y1, out.carry
        ys.append(y)
    states = torch.stack(ys, dim=1)
    return term.energy(0.0, states.flatten(0, 1)).reshape(states.shape[:2])


def test_energy_stays_in_a_band_for_symplectic_euler_but_drifts_for_forward_euler():
    h, steps = 0.05, 10_000
    term = SeparableHamiltonianTerm(4).to(F64)  # time-invariant K, b
    y0 = torch.randn(32, 8, dtype=F64)
    with torch.no_grad():
        symplectic = energies(SymplecticEuler(), term, y0, h, steps)
        forward = energies(nct.Euler(), term, y0, h, steps)
    drift_s = (symplectic - symplectic[:, :1]).abs()
    drift_f = forward - forward[:, :1]
    band = float(drift_s.max())
    first, last = float(drift_s[:, :1001].max()), float(drift_s[:, -1000:].max())
    # Symplectic Euler: the energy error over the last 1000 steps is no larger than over the first 1000.
    assert last <= 1.25 * first
    assert band < 0.25 * float(symplectic[:, 0].mean())
    # Forward Euler: H grows at every sample, is still growing, and ends far outside that band.
    assert bool((drift_f[:, -1] > 2 * drift_f[:, 1000]).all())
    assert float(drift_f[:, -1].min()) > 50 * band


def test_the_iterated_step_map_is_what_solve_computes():
    term = SeparableHamiltonianTerm(4, layers=5, span=1.0).to(F64)
    y0 = torch.randn(6, 8, dtype=F64)
    t = torch.linspace(0, 1, 21, dtype=F64)
    sol = nct.solve(term, y0, t, solver=SymplecticEuler(), controller=nct.ConstantStep(0.05))
    y = y0
    for k in range(20):
        y = SymplecticEuler().step(term, t[k].expand(6), y, torch.full((6,), 0.05, dtype=F64), (), None, False).y1
        torch.testing.assert_close(sol.ys[:, k + 1], y, rtol=1e-13, atol=1e-13)


# --- 4. convergence and the general ODE solvers -------------------------------------------


def reference(term, y0: torch.Tensor, span: float) -> np.ndarray:
    """`[B, 2n]` SciPy DOP853 (rtol 1e-12) solution at `span`, solved layer by layer across the jumps."""
    edges = np.linspace(0.0, span, term.layers + 1)
    out = []
    for row in y0.numpy():
        y = row
        for j in range(term.layers):
            t_mid = torch.tensor([(edges[j] + edges[j + 1]) / 2], dtype=F64)

            def field(t, y, t_mid=t_mid):
                with torch.no_grad():
                    return term.vector_field(t_mid, torch.from_numpy(y)[None], None)[0].numpy()

            sol = solve_ivp(field, (edges[j], edges[j + 1]), y, method="DOP853", rtol=1e-12, atol=1e-12)
            y = sol.y[:, -1]
        out.append(y)
    return np.stack(out)


def final_error(solver, term, y0: torch.Tensor, span: float, dt: float, ref: np.ndarray) -> float:
    t = torch.tensor([0.0, span], dtype=F64)
    with torch.no_grad():
        sol = nct.solve(term, y0, t, solver=solver, controller=nct.ConstantStep(dt), max_steps=10_000)
    return float(np.abs(sol.ys[:, -1].numpy() - ref).max())


def slope(dts: list[float], errors: list[float]) -> float:
    return float(np.polyfit(np.log(dts), np.log(errors), 1)[0])


def test_symplectic_euler_converges_at_order_one_and_rk4_at_order_four():
    term = SeparableHamiltonianTerm(2, layers=4, span=2.0).to(F64)
    y0 = torch.randn(3, 4, dtype=F64)
    ref = reference(term, y0, 2.0)
    dts = [1 / 16, 1 / 32, 1 / 64, 1 / 128]
    errors = [final_error(SymplecticEuler(), term, y0, 2.0, dt, ref) for dt in dts]
    assert slope(dts, errors) == pytest.approx(SymplecticEuler.order, abs=0.15)
    # Measured: errors 0.102, 0.0513, 0.0257, 0.0129 (slope 0.99); RK4 9.7e-6 ... 2.3e-9 (slope 4.01).
    rk4_errors = [final_error(nct.RK4(), term, y0, 2.0, dt, ref) for dt in dts]
    assert slope(dts, rk4_errors) == pytest.approx(4.0, abs=0.3)
    assert rk4_errors[-1] < 1e-8


def test_adaptive_solvers_integrate_both_terms_through_the_vector_field():
    for term in (SeparableHamiltonianTerm(2, layers=3, span=1.5), HamiltonianTerm(2, layers=3, span=1.5)):
        term = term.to(F64)
        y0 = torch.randn(3, 4, dtype=F64)
        with torch.no_grad():
            sol = nct.solve(term, y0, torch.tensor([0.0, 1.5], dtype=F64), solver=nct.Dopri5(),
                            controller=nct.PIDController(rtol=1e-10, atol=1e-12))  # fmt: skip
        np.testing.assert_allclose(sol.ys[:, -1].numpy(), reference(term, y0, 1.5), rtol=0, atol=1e-8)


def test_vector_field_is_j_times_the_gradient_of_the_energy():
    for term in (SeparableHamiltonianTerm(3, layers=2), HamiltonianTerm(3, layers=2)):
        term = term.to(F64)
        y = torch.randn(5, 6, dtype=F64, requires_grad=True)
        t = torch.tensor([0.1, 0.9, 0.2, 0.6, 0.4], dtype=F64)  # samples in both layers
        (grad,) = torch.autograd.grad(term.energy(t, y).sum(), y)
        torch.testing.assert_close(term.vector_field(t, y, None), grad @ j_matrix(3).T)
        p, q = y[:, :3], y[:, 3:]
        torch.testing.assert_close(term.p_rate(t, p, q), grad[:, 3:])
        torch.testing.assert_close(term.q_rate(t, p, q), -grad[:, :3])


def test_layers_are_read_per_sample_and_switch_at_the_boundaries():
    term = SeparableHamiltonianTerm(2, layers=4, span=1.0).to(F64)
    y = torch.randn(4, 4, dtype=F64)
    t = torch.tensor([0.0, 0.25, 0.6, 1.0], dtype=F64)  # layers 0, 1, 2 and 3 (T reads the last)
    together = term.vector_field(t, y, None)
    for b, layer in enumerate([0, 1, 2, 3]):
        alone = term.vector_field(torch.tensor([(layer + 0.5) / 4], dtype=F64), y[b : b + 1], None)
        torch.testing.assert_close(together[b : b + 1], alone)
    assert term.jump_times(t[None]).tolist() == [[0.25, 0.5, 0.75]]


# --- the networks are the published recursions ---------------------------------------------


def h2_recursion(term: SeparableHamiltonianTerm, y: torch.Tensor, h: float) -> torch.Tensor:
    """H2-DNN layer by layer: q with the old p, then p with the new q (J = [[0, I], [-I, 0]])."""
    n = term.features
    p, q = y[:, :n], y[:, n:]
    for j in range(term.layers):
        kp, kq, bp, bq = term.weight_p[j], term.weight_q[j], term.bias_p[j], term.bias_q[j]
        q = q - h * torch.tanh(p @ kp.T + bp) @ kp
        p = p + h * torch.tanh(q @ kq.T + bq) @ kq
    return torch.cat([p, q], dim=1)


def h1_recursion(term: HamiltonianTerm, y: torch.Tensor, h: float) -> torch.Tensor:
    """H1-DNN layer by layer: forward Euler on $\\dot y = J K^\\top \\tanh(K y + b)$."""
    j_mat = j_matrix(term.features)
    for j in range(term.layers):
        k, b = term.weight[j], term.bias[j]
        y = y + h * (torch.tanh(y @ k.T + b) @ k) @ j_mat.T
    return y


@pytest.mark.parametrize("kind, recursion", [("H2", h2_recursion), ("H1", h1_recursion)])
def test_network_propagation_equals_the_layer_recursion(kind, recursion):
    net = HamiltonianNet(3, 2, kind=kind, features=2, layers=16, step=0.1).to(F64)
    x = torch.randn(5, 3, dtype=F64)
    y0 = net.embed(x)
    torch.testing.assert_close(y0, torch.cat([x, torch.zeros(5, 1, dtype=F64)], 1))
    with torch.no_grad():
        torch.testing.assert_close(net.propagate(y0), recursion(net.term, y0, 0.1), rtol=1e-12, atol=1e-12)


def test_regulariser_is_alpha_h_times_half_the_squared_layer_differences():
    net = HamiltonianNet(2, 2, kind="H1", features=1, layers=3, step=0.2, alpha=0.5).to(F64)
    k, b = net.term.weight, net.term.bias
    expected = (
        0.5 * 0.2 * sum(0.5 * ((k[j + 1] - k[j]).square().sum() + (b[j + 1] - b[j]).square().sum()) for j in range(2))
    )
    torch.testing.assert_close(net.regulariser(), expected)
    net.regulariser().backward()
    assert net.term.weight.grad is not None and float(net.term.weight.grad.abs().sum()) > 0


# --- 5. bad input -------------------------------------------------------------------------


def test_symplectic_euler_refuses_terms_that_are_not_separable_hamiltonians():
    y0, t = torch.randn(2, 4), torch.tensor([0.0, 1.0])
    for term in (nct.ODETerm(lambda t, y, args: -y), HamiltonianTerm(2)):
        with pytest.raises(IncompatibleTermError, match="SymplecticEuler cannot integrate"):
            nct.solve(term, y0, t, solver=SymplecticEuler(), controller=nct.ConstantStep(0.1))


def test_the_term_refuses_odd_and_mismatched_states_naming_the_argument():
    term = SeparableHamiltonianTerm(2, layers=2)
    t = torch.zeros(3)
    with pytest.raises(InvalidInputError, match=r"`y` must be \[B, 4\].*odd size"):
        term.vector_field(t, torch.randn(3, 5), None)
    with pytest.raises(InvalidInputError, match=r"`y` must be \[B, 4\].*\(3, 6\)"):
        term.energy(t, torch.randn(3, 6))
    with pytest.raises(InvalidInputError, match=r"`p` must be \[B, 2\]"):
        term.p_rate(t, torch.randn(3, 3), torch.randn(3, 2))
    with pytest.raises(InvalidInputError, match=r"`q` must be \[B, 2\]"):
        term.q_rate(t, torch.randn(3, 2), torch.randn(3))
    with pytest.raises(InvalidInputError, match="`p` and `q` must have the same batch size"):
        term.p_rate(torch.zeros(2), torch.randn(2, 2), torch.randn(3, 2))
    with pytest.raises(InvalidInputError, match=r"`t` must be \[B\] with B = 3"):
        term.vector_field(torch.zeros(2), torch.randn(3, 4), None)
    with pytest.raises(InvalidInputError, match="`y`"):
        nct.solve(term, torch.randn(3, 5), torch.tensor([0.0, 1.0]), solver=SymplecticEuler(),
                  controller=nct.ConstantStep(0.1))  # fmt: skip


@pytest.mark.parametrize(
    "options, name",
    [
        ({"features": 0}, "features"),
        ({"layers": 2.0}, "layers"),
        ({"span": -1.0}, "span"),
        ({"std": float("nan")}, "std"),
    ],
)
def test_term_constructor_names_the_bad_argument(options, name):
    kwargs = {"features": 2, **options}
    with pytest.raises(InvalidInputError, match=f"`{name}`"):
        SeparableHamiltonianTerm(**kwargs)


@pytest.mark.parametrize(
    "options, name",
    [
        ({"kind": "H3"}, "kind"),
        ({"embedding": "fourier"}, "embedding"),
        ({"inputs": 5}, "embedding"),
        ({"step": 0.0}, "step"),
        ({"alpha": -1.0}, "alpha"),
        ({"layers": 0}, "layers"),
    ],
)
def test_network_constructor_names_the_bad_argument(options, name):
    kwargs = {"inputs": 2, "outputs": 2, "features": 2, **options}
    with pytest.raises(InvalidInputError, match=f"`{name}"):
        HamiltonianNet(**kwargs)


def test_network_refuses_inputs_of_the_wrong_shape():
    with pytest.raises(InvalidInputError, match=r"`x` must be a tensor \[B, 2\]; got Tensor of shape \(4, 3\)"):
        HamiltonianNet(2, 2)(torch.randn(4, 3))


def test_registry_makes_symplectic_euler():
    assert type(registry.solver("symplectic_euler")) is SymplecticEuler
    assert not SymplecticEuler().adaptive and SymplecticEuler.order == 1


def test_dense_output_interpolates_between_steps():
    term = SeparableHamiltonianTerm(2, layers=2).to(F64)
    y0 = torch.randn(3, 4, dtype=F64)
    sol = nct.solve(term, y0, torch.tensor([0.0, 1.0], dtype=F64), solver=SymplecticEuler(),
                    controller=nct.ConstantStep(0.125), dense=True)  # fmt: skip
    torch.testing.assert_close(sol.evaluate(torch.full((3,), 1.0, dtype=F64)), sol.ys[:, -1])
    middle = sol.evaluate(torch.full((3,), 0.3, dtype=F64))
    assert torch.isfinite(middle).all() and middle.shape == (3, 4)


# --- 6. an H2 net learns double circles -----------------------------------------------------


def double_circles(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`([size, 2], [size])` two noisy concentric circles (radii 0.4 and 1.0), labels 0 and 1."""
    labels = torch.arange(size) % 2
    radius = torch.where(labels == 0, 0.4, 1.0) + 0.05 * torch.randn(size)
    angle = 2 * math.pi * torch.rand(size)
    return torch.stack([radius * angle.cos(), radius * angle.sin()], dim=1), labels


def train_accuracy(model: torch.nn.Module, x: torch.Tensor, labels: torch.Tensor, steps: int, lr: float) -> float:
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    regulariser = getattr(model, "regulariser", lambda: 0.0)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), labels) + regulariser()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return float((model(x).argmax(dim=1) == labels).float().mean())


def test_h2_network_learns_double_circles_that_no_linear_classifier_separates():
    x, labels = double_circles(256)
    linear = train_accuracy(torch.nn.Linear(2, 2), x, labels, steps=200, lr=0.05)
    net = HamiltonianNet(2, 2, kind="H2", features=2, layers=64, step=0.05)
    accuracy = train_accuracy(net, x, labels, steps=60, lr=0.05)
    assert linear < 0.7
    assert accuracy > 0.9

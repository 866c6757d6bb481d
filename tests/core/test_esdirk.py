"""The ESDIRK methods Kvaerno3/Kvaerno5 and the IMEX pair KenCarp4: order conditions of their tableaus,
convergence orders as log-log slopes, agreement with SciPy's Radau on stiff problems, gradients,
per-sample Newton and the split term."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

import neuralct as nct
from neuralct import registry
from neuralct.solvers import KenCarp4, Kvaerno3, Kvaerno5
from neuralct.terms.split import SplitTerm

D = torch.float64
TIGHT_NEWTON = {"newton_tol": 1e-13, "newton_atol": 1e-13, "max_newton_iters": 30}


# --- order conditions ---------------------------------------------------------------------------


def trees(order: int) -> list[tuple]:
    """Rooted trees with `order` nodes, each a sorted tuple of its subtrees."""
    if order == 1:
        return [()]
    found = set()
    for parts in _partitions(order - 1):
        for children in itertools.product(*(trees(p) for p in parts)):
            found.add(tuple(sorted(children)))
    return sorted(found)


def _partitions(n: int, largest: int | None = None) -> list[tuple[int, ...]]:
    largest = n if largest is None else largest
    if n == 0:
        return [()]
    return [(k,) + rest for k in range(min(n, largest), 0, -1) for rest in _partitions(n - k, k)]


def _density(tree: tuple) -> int:
    size = _size(tree)
    return size * int(np.prod([_density(child) for child in tree])) if tree else 1


def _size(tree: tuple) -> int:
    return 1 + sum(_size(child) for child in tree)


def elementary_weight(b: np.ndarray, tree: tuple, matrix_of) -> float:
    """$b^T \\Phi(t)$ where `matrix_of(node path)` gives the Butcher matrix of each non-root node."""

    def phi(node: tuple, path: tuple) -> np.ndarray:
        out = np.ones(len(b))
        for index, child in enumerate(node):
            out = out * (matrix_of(path + (index,)) @ phi(child, path + (index,)))
        return out

    return float(b @ phi(tree, ()))


def _node_paths(tree: tuple, path: tuple = ()) -> list[tuple]:
    found = []
    for index, child in enumerate(tree):
        found.append(path + (index,))
        found.extend(_node_paths(child, path + (index,)))
    return found


def order_defects(b, matrices: list[np.ndarray], order: int) -> list[float]:
    """$|b^T \\Phi(t) - 1/\\gamma(t)|$ for every tree up to `order` and every colouring of its
    non-root nodes by `matrices` (one matrix: the classical conditions; two: the additive ones)."""
    defects = []
    for size in range(1, order + 1):
        for tree in trees(size):
            paths = _node_paths(tree)
            for colouring in itertools.product(range(len(matrices)), repeat=len(paths)):
                colour = dict(zip(paths, colouring))
                value = elementary_weight(np.asarray(b), tree, lambda p, colour=colour: matrices[colour[p]])
                defects.append(abs(value - 1 / _density(tree)))
    return defects


def implicit_matrix(solver) -> np.ndarray:
    return np.array(solver.tableau.full_matrix())


def explicit_matrix(solver) -> np.ndarray:
    tab = solver.tableau.explicit
    return np.array([list(row) + [0.0] * (tab.stages - len(row)) for row in tab.a])


def test_tree_counts_are_the_known_ones():
    assert [len(trees(n)) for n in range(1, 7)] == [1, 1, 2, 4, 9, 20]


@pytest.mark.parametrize("solver", [Kvaerno3(), Kvaerno5()], ids=lambda s: type(s).__name__)
def test_kvaerno_tableaus_satisfy_the_order_conditions_and_their_embedded_ones(solver):
    tab, order = solver.tableau, int(solver.order)
    matrix = implicit_matrix(solver)
    assert max(order_defects(tab.b, [matrix], order)) < 1e-10
    # and not one order more: the declared order is the true one
    assert max(order_defects(tab.b, [matrix], order + 1)) > 1e-4
    embedded = np.asarray(tab.b) - np.asarray(tab.b_error)
    assert max(order_defects(embedded, [matrix], order - 1)) < 1e-10
    assert max(order_defects(embedded, [matrix], order)) > 1e-4


def test_kencarp4_satisfies_the_additive_order_conditions_up_to_order_4():
    solver = KenCarp4()
    tab = solver.tableau
    matrices = [explicit_matrix(solver), implicit_matrix(solver)]
    assert max(order_defects(tab.b, matrices, 4)) < 1e-10
    assert max(order_defects(tab.b, matrices[:1], 5)) > 1e-6  # not fifth order
    embedded = np.asarray(tab.b) - np.asarray(tab.b_error)
    assert max(order_defects(embedded, matrices, 3)) < 1e-10


def test_kencarp4_dense_output_is_third_order_and_ends_on_the_solution():
    solver = KenCarp4()
    dense = np.array(solver.tableau.explicit.dense)  # [P, s]
    c = np.array(solver.tableau.c)
    matrix = implicit_matrix(solver)
    for theta in (0.3, 0.7, 1.0):
        weights = (theta ** np.arange(1, dense.shape[0] + 1)) @ dense
        # b(theta) . 1 = theta, b(theta) . c = theta^2 / 2, b(theta) . c^2 = theta^3 / 3, b(theta) . A c = theta^3 / 6
        conditions = [weights.sum() - theta, weights @ c - theta**2 / 2, weights @ c**2 - theta**3 / 3]
        conditions.append(weights @ matrix @ c - theta**3 / 6)
        assert max(abs(x) for x in conditions) < 1e-10
    np.testing.assert_allclose((np.ones(dense.shape[0]) @ dense), solver.tableau.b, atol=1e-12)


@pytest.mark.parametrize("solver", [Kvaerno3(), Kvaerno5(), KenCarp4()], ids=lambda s: type(s).__name__)
def test_implicit_tableaus_are_l_stable(solver):
    matrix, b = implicit_matrix(solver), np.array(solver.tableau.b)
    ones = np.ones(len(b))

    def stability(z: complex) -> complex:
        return 1 + z * b @ np.linalg.solve(np.eye(len(b)) - z * matrix, ones)

    assert abs(stability(-1e9)) < 1e-6
    assert all(abs(stability(complex(-x, y))) <= 1 + 1e-12 for x in (1e-3, 1.0, 10.0, 1e4) for y in (0.0, 1.0, 50.0))


# --- convergence orders -------------------------------------------------------------------------


def _slope(run, dts) -> float:
    errors = [run(dt) for dt in dts]
    return float(np.polyfit(np.log(dts), np.log(errors), 1)[0])


def _nonlinear(t, y, args):
    return -(y**2) + torch.sin(t)[:, None]


NONLINEAR_EXACT = solve_ivp(lambda t, y: -(y**2) + np.sin(t), (0, 1), [1.0], method="Radau", rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize(
    "solver, dts",
    [(Kvaerno3(**TIGHT_NEWTON), [0.2, 0.1, 0.05]), (Kvaerno5(**TIGHT_NEWTON), [0.5, 0.25, 0.125])],
    ids=["Kvaerno3", "Kvaerno5"],
)
def test_kvaerno_converges_at_its_order_with_constant_steps(solver, dts):
    exact = NONLINEAR_EXACT.y[0, -1]

    def error(dt: float) -> float:
        sol = nct.solve(
            nct.ODETerm(_nonlinear),
            torch.ones(1, 1, dtype=D),
            torch.tensor([0.0, 1.0], dtype=D),
            solver=solver,
            controller=nct.ConstantStep(dt),
        )
        return abs(float(sol.ys[0, -1, 0]) - exact)

    assert abs(_slope(error, dts) - solver.order) < 0.35


def _oscillator(t, y, args):
    """Non-stiff: a rotation."""
    return torch.stack([-y[:, 1], y[:, 0]], dim=1)


def _relaxation(t, y, rate):
    """Stiff for a large `rate`, linear: each coordinate pulled to cos t."""
    return -rate * (y - torch.cos(t)[:, None])


def _split_reference(times: np.ndarray, rate: float) -> np.ndarray:
    field = lambda t, y: np.array([-y[1], y[0]]) - rate * (y - np.cos(t))  # noqa: E731
    return solve_ivp(field, (0, times[-1]), [1.0, 0.0], method="Radau", rtol=1e-13, atol=1e-14, t_eval=times).y.T


SPLIT = SplitTerm(explicit=nct.ODETerm(_oscillator), implicit=nct.ODETerm(_relaxation))
SUMMED = nct.ODETerm(lambda t, y, rate: _oscillator(t, y, rate) + _relaxation(t, y, rate))
MILD, STIFF = torch.tensor([2.0], dtype=D), torch.tensor([2000.0], dtype=D)


def test_kencarp4_converges_at_order_four_as_imex_and_fully_implicit():
    exact = _split_reference(np.array([0.0, 1.0]), float(MILD))[-1]
    y0 = torch.tensor([[1.0, 0.0]], dtype=D)
    for term in (SPLIT, SUMMED):

        def error(dt: float, term=term) -> float:
            sol = nct.solve(
                term,
                y0,
                torch.tensor([0.0, 1.0], dtype=D),
                solver=KenCarp4(**TIGHT_NEWTON),
                controller=nct.ConstantStep(dt),
                args=MILD,
            )
            return float(np.abs(sol.ys[0, -1].numpy() - exact).max())

        assert abs(_slope(error, [0.2, 0.1, 0.05]) - 4) < 0.3


# ARK4(3)6L[2]SA transcribed from Kennedy & Carpenter (2003), tables 5 and 6, for a reference step that
# shares no code with the solver: the explicit rows, the implicit rows (diagonal 1/4) and the weights.
_ARK_C = (0.0, 1 / 2, 83 / 250, 31 / 50, 17 / 20, 1.0)
_ARK_B = (82889 / 524892, 0.0, 15625 / 83664, 69875 / 102672, -2260 / 8211, 1 / 4)
_ARK_EXPLICIT = (
    (1 / 2,),
    (13861 / 62500, 6889 / 62500),
    (-116923316275 / 2393684061468, -2731218467317 / 15368042101831, 9408046702089 / 11113171139209),
    (-451086348788 / 2902428689909, -2682348792572 / 7519795681897, 12662868775082 / 11960479115383,
     3355817975965 / 11060851509271),
    (647845179188 / 3216320057751, 73281519250 / 8382639484533, 552539513391 / 3454668386233,
     3354512671639 / 8306763924573, 4040 / 17871),
)  # fmt: skip
_ARK_IMPLICIT = (
    (1 / 4,),
    (8611 / 62500, -1743 / 31250),
    (5012029 / 34652500, -654441 / 2922500, 174375 / 388108),
    (15267082809 / 155376265600, -71443401 / 120774400, 730878875 / 902184768, 2285395 / 8070912),
    _ARK_B[:5],
)


def _ark_step(t: float, y: np.ndarray, h: float, rate: float) -> np.ndarray:
    """One IMEX step of the rotation (explicit) plus the relaxation (implicit) in NumPy; each stage's
    implicit equation is linear, $z (1 + h\\gamma k) = r + h\\gamma k \\cos t_i$, and solved exactly."""
    rotation = np.array([[0.0, -1.0], [1.0, 0.0]])
    fs, gs = [rotation @ y], [-rate * (y - np.cos(t))]
    for i in range(1, 6):
        known = y + h * sum(_ARK_IMPLICIT[i - 1][j] * gs[j] + _ARK_EXPLICIT[i - 1][j] * fs[j] for j in range(i))
        ti = t + _ARK_C[i] * h
        z = (known + h * rate * np.cos(ti) / 4) / (1 + h * rate / 4)
        fs.append(rotation @ z)
        gs.append(-rate * (z - np.cos(ti)))
    return y + h * sum(b * (f + g) for b, f, g in zip(_ARK_B, fs, gs))


def test_kencarp4_imex_step_is_the_papers_and_its_stiff_local_error_is_first_order():
    """With h * rate from 25 to 400 the IMEX step equals the transcribed reference step, so its local
    error, which falls only like h (order reduction of the explicit coupling, stage order 1), is the
    method's and not a defect; the all-implicit step's falls like h^2."""
    t0, rate, steps = 1.0, float(STIFF), (0.2, 0.05, 0.025, 0.0125)
    start = _split_reference(np.array([0.0, t0]), rate)[-1]
    local = {"imex": [], "implicit": []}
    for h in steps:
        exact = _split_reference(np.array([0.0, t0, t0 + h]), rate)[-1]
        for name, term in (("imex", SPLIT), ("implicit", SUMMED)):
            sol = nct.solve(
                term,
                torch.tensor(start[None], dtype=D),
                torch.tensor([t0, t0 + h], dtype=D),
                solver=KenCarp4(**TIGHT_NEWTON),
                controller=nct.ConstantStep(h),
                args=STIFF,
            )
            y1 = sol.ys[0, -1].numpy()
            if name == "imex":
                np.testing.assert_allclose(y1, _ark_step(t0, start, h, rate), rtol=1e-12, atol=1e-14)
            local[name].append(float(np.abs(y1 - exact).max()))
    fit = lambda errors: float(np.polyfit(np.log(steps[1:]), np.log(errors[1:]), 1)[0])  # noqa: E731
    assert 1.0 < fit(local["imex"]) < 1.5
    assert 1.8 < fit(local["implicit"]) < 2.6
    assert local["implicit"][0] < local["imex"][0] / 10


# --- against SciPy on stiff problems ------------------------------------------------------------


def van_der_pol(t, y, mu):
    x, v = y[:, 0], y[:, 1]
    return torch.stack([v, mu * (1 - x * x) * v - x], dim=1)


def _van_der_pol_reference(mu: float, times: np.ndarray) -> np.ndarray:
    field = lambda t, y: [y[1], mu * (1 - y[0] ** 2) * y[1] - y[0]]  # noqa: E731
    return solve_ivp(field, (0, times[-1]), [2.0, 0.0], method="Radau", rtol=1e-10, atol=1e-12, t_eval=times).y.T


@pytest.mark.parametrize("solver", [Kvaerno5(), KenCarp4()], ids=lambda s: type(s).__name__)
def test_stiff_van_der_pol_matches_radau_within_ten_times_the_tolerance(solver):
    mu, rtol = 100.0, 1e-6
    times = torch.linspace(0, 60, 7, dtype=D)
    sol = nct.solve(
        nct.ODETerm(van_der_pol),
        torch.tensor([[2.0, 0.0]], dtype=D),
        times,
        solver=solver,
        controller=nct.PIDController(rtol=rtol, atol=rtol),
        args=torch.tensor([mu], dtype=D),
        max_steps=20_000,
    )
    reference = _van_der_pol_reference(mu, times.numpy())
    error = np.abs(sol.ys[0].numpy() - reference) / (rtol * (1 + np.abs(reference)))
    assert error.max() < 10, error.max()
    # an explicit solver needs ~ mu * 60 / 3 steps; this is far from it
    assert int(sol.stats.steps[0]) < 2000


def test_kvaerno5_error_estimate_is_its_local_error_on_a_mildly_stiff_oscillator():
    """Van der Pol mu = 10 with the steps an rtol 1e-6 solve takes (0.2 to 0.8): the estimate is within a
    factor 3 of the true local error, neither optimistic nor pessimistic. So the global error of an
    adaptive solve at rtol 1e-6 (~80 tolerances over two cycles, benchmarks/stiff.py) is the
    accumulation of local errors held at the tolerance, not a faulty estimate (SciPy's Radau at the
    same rtol ends 0.26 tolerances off: its step control is far more conservative)."""
    mu, solver = 10.0, Kvaerno5(**TIGHT_NEWTON)
    term, args = nct.ODETerm(van_der_pol), torch.tensor([mu], dtype=D)
    field = lambda t, y: [y[1], mu * (1 - y[0] ** 2) * y[1] - y[0]]  # noqa: E731
    starts = np.array([3.0, 6.0, 14.0, 22.0])
    states = _van_der_pol_reference(mu, np.concatenate([[0.0], starts]))[1:]
    ratios = []
    for t0, y0 in zip(starts, states):
        y, t = torch.tensor(y0[None], dtype=D), torch.tensor([t0], dtype=D)
        carry, _ = solver.init(term, t, y, args)
        for h in (0.2, 0.4, 0.8):
            out = solver.step(term, t, y, torch.tensor([h], dtype=D), carry, args, False)
            exact = solve_ivp(field, (t0, t0 + h), y0, method="Radau", rtol=1e-13, atol=1e-15).y[:, -1]
            ratios.append(np.abs(out.y1[0].numpy() - exact).max() / float(out.error.abs().max()))
    assert min(ratios) > 1 / 3 and max(ratios) < 3, ratios


def robertson(t, y, args):
    a, b, c = y[:, 0], y[:, 1], y[:, 2]
    return torch.stack([-0.04 * a + 1e4 * b * c, 0.04 * a - 1e4 * b * c - 3e7 * b * b, 3e7 * b * b], dim=1)


@pytest.mark.parametrize("solver_class", [Kvaerno5, Kvaerno3], ids=lambda s: s.__name__)
def test_robertson_matches_radau_within_ten_times_the_tolerance(solver_class):
    rtol, atol = 1e-6, 1e-10
    times = torch.tensor([0.0, 1e-2, 1.0, 1e2, 1e4], dtype=D)
    sol = nct.solve(
        nct.ODETerm(robertson),
        torch.tensor([[1.0, 0.0, 0.0]], dtype=D),
        times,
        solver=solver_class(newton_tol=1e-9, newton_atol=1e-13),
        controller=nct.PIDController(rtol=rtol, atol=atol),
        max_steps=20_000,
    )
    field = lambda t, y: [  # noqa: E731
        -0.04 * y[0] + 1e4 * y[1] * y[2],
        0.04 * y[0] - 1e4 * y[1] * y[2] - 3e7 * y[1] ** 2,
        3e7 * y[1] ** 2,
    ]
    reference = solve_ivp(field, (0, 1e4), [1, 0, 0], method="Radau", rtol=1e-10, atol=1e-14, t_eval=times.numpy())
    error = np.abs(sol.ys[0].numpy() - reference.y.T) / (atol + rtol * np.abs(reference.y.T))
    assert error.max() < 10, error.max()
    assert error.max() > 1e-3  # a tolerance-limited solve, not a suspiciously exact one


# --- IMEX ---------------------------------------------------------------------------------------


def test_imex_takes_far_fewer_steps_than_an_explicit_method_on_a_stiff_plus_nonstiff_problem():
    times = torch.linspace(0, 3, 4, dtype=D)
    y0 = torch.tensor([[1.0, 0.0]], dtype=D)
    reference = _split_reference(times.numpy(), float(STIFF))
    runs = {}
    for name, solver in (("kencarp4", KenCarp4()), ("tsit5", nct.Tsit5())):
        controller = nct.PIDController(rtol=1e-6, atol=1e-8)
        sol = nct.solve(SPLIT, y0, times, solver=solver, controller=controller, args=STIFF, max_steps=10_000)
        assert np.abs(sol.ys[0].numpy() - reference).max() < 1e-5, name
        runs[name] = int(sol.stats.steps[0])
    # Tsit5 is held near its stability limit h ~ 3.3 / 2000; KenCarp4 is not (its steps are set by
    # the IMEX coupling's local error, about 3x its stability limit here: 565 against 1791 steps)
    assert 2 * runs["kencarp4"] < runs["tsit5"], runs


class CountedJacobian(nct.ODETerm):
    """The relaxation with its Jacobian given, counting the calls."""

    calls = 0

    def jacobian(self, t, y, args):
        CountedJacobian.calls += 1
        return -args[:, None, None] * torch.eye(2, dtype=y.dtype).expand(y.shape[0], 2, 2)


def test_kencarp4_factorises_the_supplied_jacobian_of_the_implicit_part_only():
    times = torch.linspace(0, 2, 3, dtype=D)
    y0 = torch.tensor([[1.0, 0.0]], dtype=D)
    supplied = SplitTerm(explicit=nct.ODETerm(_oscillator), implicit=CountedJacobian(_relaxation))
    controller = nct.PIDController(rtol=1e-7, atol=1e-9)
    CountedJacobian.calls = 0
    given = nct.solve(supplied, y0, times, solver=KenCarp4(), controller=controller, args=MILD * 25)
    automatic = nct.solve(SPLIT, y0, times, solver=KenCarp4(), controller=controller, args=MILD * 25)
    assert CountedJacobian.calls >= 1
    torch.testing.assert_close(given.ys, automatic.ys, rtol=1e-12, atol=1e-12)


def test_split_term_is_their_sum_for_every_other_solver():
    times = torch.linspace(0, 1, 3, dtype=D)
    y0 = torch.tensor([[1.0, 0.0]], dtype=D)
    controller = nct.PIDController(rtol=1e-8, atol=1e-10)
    for solver in (nct.Tsit5(), Kvaerno5()):
        a = nct.solve(SPLIT, y0, times, solver=solver, controller=controller, args=MILD)
        b = nct.solve(SUMMED, y0, times, solver=solver, controller=controller, args=MILD)
        torch.testing.assert_close(a.ys, b.ys, rtol=1e-12, atol=1e-12)


def test_split_term_refuses_a_part_that_is_not_a_drift_term_by_name():
    with pytest.raises(TypeError, match="`implicit` must be an ODETerm or another AbstractDriftTerm; got function"):
        SplitTerm(explicit=nct.ODETerm(_oscillator), implicit=_relaxation)


# --- per-sample Newton, gradients, options ------------------------------------------------------


MUS = torch.tensor([3.0, 300.0, 30.0], dtype=D)


@pytest.mark.parametrize("solver", [Kvaerno3(), Kvaerno5(), KenCarp4()], ids=lambda s: type(s).__name__)
def test_a_sample_newton_and_steps_do_not_depend_on_its_batch_mates(solver):
    times = torch.linspace(0, 4, 5, dtype=D)
    y0 = torch.tensor([[2.0, 0.0], [2.0, 0.0], [1.0, 1.0]], dtype=D)
    controller = nct.PIDController(rtol=1e-5, atol=1e-7)
    term = nct.ODETerm(van_der_pol)
    batch = nct.solve(term, y0, times, solver=solver, controller=controller, args=MUS)
    assert bool(batch.succeeded.all())
    for b in range(3):
        alone = nct.solve(term, y0[b : b + 1], times, solver=solver, controller=controller, args=MUS[b : b + 1])
        torch.testing.assert_close(alone.ys[0], batch.ys[b], rtol=1e-12, atol=1e-12)
        for name in ("steps", "accepted", "rejected", "vf_evals"):
            assert int(getattr(alone.stats, name)[0]) == int(getattr(batch.stats, name)[b]), name
        assert int(alone.status[0]) == int(batch.status[b])
    # each sample kept its own step count and its own count of Newton iterations
    assert len(set(batch.stats.steps.tolist())) == 3
    assert len(set(batch.stats.vf_evals.tolist())) == 3


def test_newton_failure_rejects_only_that_sample_and_the_controller_recovers():
    cubic = nct.ODETerm(lambda t, y, k: -k[:, None] * y**3)
    rates = torch.tensor([1e4, 1.0], dtype=D)
    sol = nct.solve(
        cubic,
        torch.ones(2, 1, dtype=D),
        torch.tensor([0.0, 1.0], dtype=D),
        solver=Kvaerno3(max_newton_iters=3),
        controller=nct.PIDController(rtol=1e-6, atol=1e-9),
        dt0=0.5,
        args=rates,
    )
    assert bool(sol.succeeded.all())
    # the stiff sample's Newton fails at the first steps (h k = 5000), which are cut until it converges
    assert int(sol.stats.rejected[0]) > 5 * max(int(sol.stats.rejected[1]), 1)
    exact = (1 + 2 * rates) ** -0.5
    torch.testing.assert_close(sol.ys[:, -1, 0], exact, rtol=1e-4, atol=0)


def test_newton_failure_under_a_constant_step_ends_the_sample_with_newton_failed():
    # sample 0: y' = -1e4 y^3, too nonlinear for two chord iterations; sample 1: y' = -y, linear
    cubic = nct.ODETerm(lambda t, y, k: -k[:, :1] * y**3 - k[:, 1:] * y)
    sol = nct.solve(
        cubic,
        torch.ones(2, 1, dtype=D),
        torch.tensor([0.0, 1.0], dtype=D),
        solver=Kvaerno5(max_newton_iters=2),
        controller=nct.ConstantStep(0.1),
        throw=False,
        args=torch.tensor([[1e4, 0.0], [0.0, 1.0]], dtype=D),
    )
    assert sol.status.tolist() == [nct.Status.NEWTON_FAILED, nct.Status.SUCCESS]
    assert float(sol.t_final[0]) == 0.0
    # y' = -y by an L-stable fifth-order method at h = 0.1
    assert abs(float(sol.ys[1, -1, 0]) - np.exp(-1.0)) < 1e-8


def test_gradients_through_a_kvaerno3_solve_match_finite_differences():
    weight = torch.tensor([[-3.0, 1.0], [-1.0, -20.0]], dtype=D, requires_grad=True)
    term = nct.ODETerm(lambda t, y, w: torch.tanh(y @ w.T))
    times = torch.tensor([[0.0, 0.3, 0.5], [0.1, 0.2, 0.6]], dtype=D)
    y0 = torch.tensor([[0.5, -1.0], [1.0, 0.2]], dtype=D, requires_grad=True)

    def run(y0, weight):
        return nct.solve(
            term, y0, times, solver=Kvaerno3(**TIGHT_NEWTON), controller=nct.ConstantStep(0.05), args=weight
        ).ys

    assert torch.autograd.gradcheck(run, (y0, weight), fast_mode=True)


def test_dense_output_passes_through_the_saved_states():
    times = torch.linspace(0, 2, 5, dtype=D)
    for solver in (Kvaerno3(), Kvaerno5(), KenCarp4()):
        sol = nct.solve(
            SPLIT,
            torch.tensor([[1.0, 0.0]], dtype=D),
            times,
            solver=solver,
            controller=nct.PIDController(rtol=1e-7, atol=1e-9),
            dense=True,
            args=MILD * 25,
        )
        torch.testing.assert_close(sol.evaluate(times[None]), sol.ys, rtol=1e-9, atol=1e-9)
        middle = torch.tensor([[0.77]], dtype=D)
        reference = _split_reference(np.array([0.0, 0.77]), 50.0)[-1]
        assert np.abs(sol.evaluate(middle)[0, 0].numpy() - reference).max() < 1e-5


@pytest.mark.parametrize("name, cls", [("kvaerno3", Kvaerno3), ("kvaerno5", Kvaerno5), ("kencarp4", KenCarp4)])
def test_registry_builds_the_stiff_solvers_by_name(name, cls):
    assert type(registry.solver(name)) is cls
    assert registry.solver(name, newton_tol=1e-9).newton_tol == 1e-9


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"newton_tol": -1.0}, "`newton_tol` must be None or a positive finite number"),
        ({"newton_atol": 0.0}, "`newton_atol` must be None or a positive finite number"),
        ({"max_newton_iters": 0}, "`max_newton_iters` must be a positive int"),
    ],
)
def test_bad_newton_options_are_refused_by_name(kwargs, message):
    with pytest.raises(nct.InvalidInputError, match=message):
        Kvaerno5(**kwargs)


@pytest.mark.parametrize(
    "solver", [Kvaerno5(), nct.ImplicitEuler(), nct.Radau5()], ids=["kvaerno5", "implicit_euler", "radau5"]
)
def test_grad_mode_with_nothing_to_differentiate_counts_its_one_probe_per_step(solver):
    """Outside `torch.no_grad()`, with nothing requiring a gradient, the graph step of an implicit
    solver evaluates one stage to find that out: one evaluation per attempted step, counted (the
    ESDIRK solvers once left it uncounted; Radau5 once spent three), with the same steps and values
    as under `no_grad`."""

    def relax(t, y, rate):
        return -rate * (y - torch.cos(t)[:, None])

    options = {
        "solver": solver,
        "controller": nct.PIDController(rtol=1e-5, atol=1e-7),
        "args": torch.tensor([[10.0], [1000.0]], dtype=torch.float64),
    }
    y0, times = torch.zeros(2, 1, dtype=torch.float64), torch.linspace(0, 2, 3, dtype=torch.float64)
    graph_mode = nct.solve(nct.ODETerm(relax), y0, times, **options)
    with torch.no_grad():
        plain = nct.solve(nct.ODETerm(relax), y0, times, **options)
    assert torch.equal(graph_mode.ys, plain.ys)
    assert torch.equal(graph_mode.stats.steps, plain.stats.steps)
    assert torch.equal(graph_mode.stats.vf_evals - plain.stats.vf_evals, plain.stats.steps)

"""`solve(..., compact=True)`: finished samples leave the batch, and nothing else changes.

Every result of a compacted solve (outputs, statuses, statistics, dense output, events and
gradients) equals the uncompacted one's, in float64, on batches whose samples differ in
stiffness, span, grid length and padding. Where the field is elementwise the arithmetic of a
row does not depend on the batch size and the results are equal bit for bit; a field with a
matrix product (`nn.Linear`) may round differently in the last place when the batch shrinks
(BLAS picks its kernel by the matrix size), so those results are compared to 1e-12, and a
gradient summed over many steps may be summed in another order (to 1e-13).
"""

from __future__ import annotations

import pytest
import torch

import neuralct as nct
from neuralct._loop.compaction import bucket, select_args

F64 = torch.float64
B = 12
EXACT = dict(rtol=0, atol=0)
# A gradient that reaches a parameter (here `args`) from many steps sums their parts; the
# sub-batch sums its own before they are scattered back, in another order: the last place
# may differ.
GRADIENT = dict(rtol=1e-13, atol=0)
# Saves interpolated from the dense output are written a window of steps at a time, by a
# matrix product over that window and the rows in it; its rounding can depend on those sizes,
# which differ once samples leave the batch: the last place may differ (measured: 1 ulp).
INTERPOLATED = dict(rtol=1e-15, atol=1e-15)


class Counted:
    """A field `f(t, y, args)` that counts the rows it evaluates."""

    def __init__(self, f):
        self.f, self.rows = f, 0

    def __call__(self, t, y, args):
        self.rows += y.shape[0]
        return self.f(t, y, args)


def van_der_pol(t, y, mu):
    x, v = y[:, 0], y[:, 1]
    return torch.stack([v, mu * (1 - x * x) * v - x], dim=1)


def damped(t, y, rate):
    x, v = y[:, 0], y[:, 1]
    return torch.stack([v, -rate * x - 0.1 * v], dim=1)


def _heterogeneous_grids(backward: bool = False) -> torch.Tensor:
    """`[B, 9]` per-sample grids: spans from 0.5 to 12, every fourth backward in time if asked."""
    spans = torch.linspace(0.5, 12, B, dtype=F64)
    grids = torch.linspace(0, 1, 9, dtype=F64)[None] * spans[:, None]
    if backward:
        grids[1::4] = grids[1::4].flip(1)
    return grids


def _both(solve_once):
    """`solve_once(compact)` -> (solution, outputs to compare) for both settings."""
    return solve_once(False), solve_once(True)


def _assert_same(plain, packed, tol):
    torch.testing.assert_close(packed.ys, plain.ys, **tol)
    torch.testing.assert_close(packed.t_final, plain.t_final, **tol)
    assert torch.equal(packed.status, plain.status)
    for name in ("vf_evals", "steps", "accepted", "rejected"):
        assert torch.equal(getattr(packed.stats, name), getattr(plain.stats, name)), name


def _stiffness_solve(compact: bool):
    mu = torch.linspace(0.1, 15, B, dtype=F64).requires_grad_()
    y0 = torch.stack([torch.full((B,), 2.0, dtype=F64), torch.linspace(-1, 1, B, dtype=F64)], dim=1)
    field = Counted(van_der_pol)
    sol = nct.solve(
        nct.ODETerm(field),
        y0,
        _heterogeneous_grids(),
        args=mu,
        controller=nct.PIDController(rtol=1e-7, atol=1e-9),
        dense=True,
        compact=compact,
    )
    queries = sol.ts[:, :1] + (sol.ts[:, -1:] - sol.ts[:, :1]) * torch.linspace(0, 1, 50, dtype=F64)
    values = sol.evaluate(queries)
    (grad,) = torch.autograd.grad(sol.ys.square().sum() + values.sum(), mu)
    return sol, values, grad, field.rows


def test_compacted_stiffness_and_span_batch_equals_the_whole_batch_bit_for_bit():
    (plain, values, grad, rows), (packed, packed_values, packed_grad, packed_rows) = _both(_stiffness_solve)
    _assert_same(plain, packed, EXACT)
    torch.testing.assert_close(packed_values, values, **EXACT)
    torch.testing.assert_close(packed_grad, grad, **GRADIENT)
    # The finished samples left: rows evaluated fall towards the sum of each sample's work.
    floor = int(plain.stats.vf_evals.sum())
    assert packed_rows < 0.8 * rows, (packed_rows, rows)
    assert packed_rows >= floor


def _mlp_padded_solve(compact: bool):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3)).double()
    times = torch.sort(torch.rand(B, 20, dtype=F64) * 4, dim=1).values
    lengths = torch.randint(2, 21, (B,))
    sol = nct.solve(
        nct.ODETerm(lambda t, y, args: net(y) * args),
        torch.randn(B, 3, dtype=F64),
        times,
        args=torch.linspace(0.2, 3, B, dtype=F64)[:, None],
        solver=nct.RK4(),
        controller=nct.ConstantStep(0.05),
        lengths=lengths,
        compact=compact,
    )
    grads = torch.autograd.grad(sol.ys.sum(), list(net.parameters()))
    return sol, grads


def test_compacted_padded_batch_with_a_matrix_field_equals_the_whole_batch():
    (plain, grads), (packed, packed_grads) = _both(_mlp_padded_solve)
    _assert_same(plain, packed, dict(rtol=1e-12, atol=1e-12))
    for grad, packed_grad in zip(grads, packed_grads):
        torch.testing.assert_close(packed_grad, grad, rtol=1e-12, atol=1e-12)


def _control_solve(compact: bool):
    """A CDE on linearly interpolated inputs of per-sample lengths (jumps at every knot)."""
    generator = torch.Generator().manual_seed(1)
    knots = torch.sort(torch.rand(B, 15, generator=generator, dtype=F64), dim=1).values
    knots = knots * torch.linspace(1, 6, B, dtype=F64)[:, None]
    path = nct.LinearPath(torch.randn(B, 15, 2, generator=generator, dtype=F64), knots)
    weight = torch.randn(1, 2, 2, generator=generator, dtype=F64).requires_grad_()
    term = nct.ControlTerm(lambda t, z, args: torch.tanh(z)[:, :, None] * weight[0], path)
    sol = nct.solve(term, torch.ones(B, 2, dtype=F64), knots, compact=compact)
    return sol, torch.autograd.grad(sol.ys.sum(), weight)[0]


def test_compacted_control_term_takes_its_paths_rows():
    (plain, grad), (packed, packed_grad) = _both(_control_solve)
    _assert_same(plain, packed, EXACT)
    torch.testing.assert_close(packed_grad, grad, **EXACT)


def _event_solve(compact: bool):
    """Falling bodies from per-sample heights, stopped at the ground by a terminal event."""
    heights = torch.linspace(1, 40, B, dtype=F64)
    y0 = torch.stack([heights, torch.zeros(B, dtype=F64)], dim=1).requires_grad_()
    event = nct.Event(lambda t, y, args: y[:, 0], terminal=True)
    sol = nct.solve(
        nct.ODETerm(lambda t, y, args: torch.stack([y[:, 1], torch.full_like(t, -9.81)], dim=1)),
        y0,
        torch.linspace(0, 5, 11, dtype=F64),
        event=event,
        compact=compact,
    )
    return sol, torch.autograd.grad(sol.event_t.sum(), y0)[0]


def test_compacted_events_stop_each_sample_where_the_whole_batch_does():
    (plain, grad), (packed, packed_grad) = _both(_event_solve)
    _assert_same(plain, packed, EXACT)
    torch.testing.assert_close(packed.event_t, plain.event_t, **EXACT)
    torch.testing.assert_close(packed.event_y, plain.event_y, **EXACT)
    assert torch.equal(packed.mask, plain.mask)
    torch.testing.assert_close(packed_grad, grad, **EXACT)
    assert (packed.status == int(nct.Status.EVENT)).all()


def test_compacted_checkpointed_backprop_gives_the_same_gradients():
    def solve_once(compact):
        mu = torch.linspace(0.1, 10, B, dtype=F64).requires_grad_()
        y0 = torch.stack([torch.full((B,), 2.0, dtype=F64), torch.zeros(B, dtype=F64)], dim=1)
        sol = nct.solve(
            nct.ODETerm(damped),
            y0,
            _heterogeneous_grids(backward=True),
            args=mu,
            gradient=nct.Backprop(checkpoint_every=20),
            compact=compact,
        )
        return sol, torch.autograd.grad(sol.ys.sum(), mu)[0]

    (plain, grad), (packed, packed_grad) = _both(solve_once)
    _assert_same(plain, packed, INTERPOLATED)
    torch.testing.assert_close(packed_grad, grad, **GRADIENT)


def test_a_term_that_cannot_take_rows_keeps_the_whole_batch():
    path = nct.PiecewiseConstantPath(torch.randn(B, 5, 1, dtype=F64), torch.linspace(0, 1, 5, dtype=F64))
    field = Counted(lambda t, y, args: -y * path.evaluate(t))
    term = nct.ODETerm(field, inputs=path)
    t = _heterogeneous_grids().abs().sort(dim=1).values / 12
    plain = nct.solve(term, torch.ones(B, 1, dtype=F64), t)
    rows = field.rows
    packed = nct.solve(term, torch.ones(B, 1, dtype=F64), t, compact=True)
    _assert_same(plain, packed, EXACT)
    assert field.rows == 2 * rows


@pytest.mark.parametrize(("running", "batch", "size"), [(5, 16, 8), (8, 16, 8), (9, 16, None), (1, 4, 1), (3, 12, 4)])
def test_running_samples_go_to_the_next_power_of_two_of_at_most_half_the_batch(running, batch, size):
    assert bucket(running, batch) == size


def test_args_rows_are_taken_from_tensors_with_b_rows_only():
    rows = torch.arange(4.0)[:, None]
    shared = torch.ones(3)
    args = select_args({"rate": rows, "pair": (shared, 2.0)}, torch.tensor([2, 0]), 4)
    assert torch.equal(args["rate"], torch.tensor([[2.0], [0.0]]))
    assert args["pair"][0] is shared and args["pair"][1] == 2.0


def test_compact_must_be_a_bool():
    with pytest.raises(nct.InvalidInputError, match="compact"):
        nct.solve(nct.ODETerm(lambda t, y, args: -y), torch.ones(2, 1), torch.linspace(0, 1, 3), compact=1)

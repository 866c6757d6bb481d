"""The augmented adjoint system of `Backsolve`, evaluated per sample.

The state of the backward solve is, per sample, the flattened concatenation
$z = [y, a, a_\\theta]$ of the forward state `[N]`, its adjoint `[N]` and the adjoint of
the differentiable inputs `[P]` (term parameters and `args` tensors), with

$$\\dot y = f(t, y), \\qquad \\dot a = -a^\\top \\partial_y f, \\qquad
\\dot a_\\theta = -a^\\top \\partial_\\theta f.$$

Every sample steps with its own step sizes, so when $a_\\theta$ is part of the state it must
be kept per sample (`[B, P]`) and summed over the batch only at the end. Per-sample
vector-Jacobian products come from one of two schemes, chosen by `probe`:

- `"vmap"`: `torch.func.vmap` over a per-sample `torch.func.vjp` of
  the field with its parameters swapped in (`ParameterSlots`, cost O(B)); valid when the vector field can be called on
  one sample at a time, i.e. it holds no per-sample data of its own.
- `"batched"`: one batched call, then `torch.autograd.grad(..., is_grads_batched=True)`
  with one cotangent per sample that is zero off that sample (cost O(B^2) in the parameter
  backward); valid for any per-sample-independent field, e.g. a `ControlTerm` whose path
  holds each sample's data.

When the parameter adjoint does not steer the step size (the seminorm), it need not be
integrated alongside: the backward solve carries $[y, a]$ only (batched VJPs in $y$, as
cheap as one backward pass of the field) and $a_\\theta$ is the quadrature
$\\int a^\\top \\partial_\\theta f\\,dt$ over its accepted steps, evaluated from their dense
output at three Gauss-Legendre nodes per step and summed over the batch by one
vector-Jacobian product for every few steps (`parameter_quadrature`), as the backward solve
goes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils._pytree import tree_flatten, tree_unflatten

from .._loop import StepRecord, Steps
from ..errors import IncompatibleTermError
from ..paths.dense import evaluate_polynomial
from ..terms.base import AbstractDriftTerm
from ..terms.ode import ODETerm
from ._swap import ParameterSlots

# Three-point Gauss-Legendre rule on [0, 1]: exact for polynomials of degree 5.
GAUSS_NODES = (0.5 - 0.1 * 15**0.5, 0.5, 0.5 + 0.1 * 15**0.5)
GAUSS_WEIGHTS = (5 / 18, 8 / 18, 5 / 18)


class _Field(nn.Module):
    """Wraps a term as a module, so that its parameters can be swapped (`ParameterSlots`) around a call of its field."""

    def __init__(self, term: AbstractDriftTerm):
        super().__init__()
        self.term = term

    def forward(self, t: Tensor, y: Tensor, args: Any) -> Tensor:
        return self.term.vector_field(t, y, args)


@dataclass(frozen=True)
class AdjointNorm:
    """Error norm of the augmented state `[B, 2N + P]`: the largest of `base` over its parts.

    With `seminorm=True` the parameter adjoint is left out (Kidger, Chen & Lyons, "'Hey,
    that's not an ODE': faster ODE adjoints via seminorms", ICML 2021): it never feeds back
    into the dynamics, so its error need not limit the step.
    """

    base: Callable[[Tensor], Tensor]
    state_size: int
    seminorm: bool

    def __call__(self, x: Tensor) -> Tensor:
        n = self.state_size
        parts = [x[:, :n], x[:, n : 2 * n]]
        if not self.seminorm and x.shape[1] > 2 * n:
            parts.append(x[:, 2 * n :])
        return torch.stack([self.base(part) for part in parts]).amax(dim=0)


class AdjointSystem:
    """The differentiable inputs of a drift term and the per-sample VJPs of its field.

    Args:
        term: the forward term; its parameters that require grad are differentiated.
        args: the `args` of the solve; its tensor leaves that require grad are differentiated.
        state_shape: the per-sample state shape `*state`.
        compile: run the per-sample VJPs (`"vmap"` mode) under `torch.compile`, which removes
            the per-operation cost of `vmap` over `vjp` (about 4x on small MLPs); falls back to
            them eagerly if the field cannot be compiled (see `probe`).
    """

    def __init__(self, term: AbstractDriftTerm, args: Any, state_shape: torch.Size, compile: bool = False):
        self.field = _Field(term)
        named = [(name, p) for name, p in self.field.named_parameters() if p.requires_grad]
        self.param_names = [name for name, _ in named]
        self.args = args
        leaves, self.args_spec = tree_flatten(args)
        self.arg_slots = [i for i, leaf in enumerate(leaves) if isinstance(leaf, Tensor) and leaf.requires_grad]
        self.leaves = leaves
        self.inputs: tuple[Tensor, ...] = tuple(p for _, p in named) + tuple(leaves[i] for i in self.arg_slots)
        self.state_shape = state_shape
        self.mode = "vmap"
        # Found once: each call of the field swaps these parameter slots, and the per-sample
        # VJP is vmapped once, not at every call of the augmented field.
        self.slots = ParameterSlots(self.field, self.param_names)
        self._eager_vjp = torch.func.vmap(self._one_sample_vjp, in_dims=(None, 0, 0, 0))
        self._per_sample_vjp = torch.compile(self._eager_vjp) if compile else self._eager_vjp

    @property
    def state_size(self) -> int:
        return int(torch.Size(self.state_shape).numel())

    @property
    def input_size(self) -> int:
        return sum(x.numel() for x in self.inputs)

    def call(self, inputs: tuple[Tensor, ...], t: Tensor, y: Tensor) -> Tensor:
        """The vector field with the differentiable inputs replaced by `inputs`."""
        k = len(self.param_names)
        args = self.args
        if self.arg_slots:
            leaves = list(self.leaves)
            for slot, value in zip(self.arg_slots, inputs[k:]):
                leaves[slot] = value
            args = tree_unflatten(leaves, self.args_spec)
        with self.slots.swapped(inputs[:k]):
            return self.field(t, y, args)

    def _one_sample_vjp(
        self, inputs: tuple[Tensor, ...], tb: Tensor, yb: Tensor, ab: Tensor
    ) -> tuple[Tensor, Tensor, tuple[Tensor, ...]]:
        """One sample's field value, its VJP in y and its VJP in `inputs` (vmapped over samples)."""

        def field(inputs: tuple[Tensor, ...], yb: Tensor) -> Tensor:
            return self.call(inputs, tb.unsqueeze(0), yb.unsqueeze(0)).squeeze(0)

        out, pullback = torch.func.vjp(field, inputs, yb)
        g_inputs, g_y = pullback(ab)
        return out, g_y, g_inputs

    def _vjp_vmap(self, t: Tensor, y: Tensor, a: Tensor) -> tuple[Tensor, Tensor, tuple[Tensor, ...]]:
        return self._per_sample_vjp(self.inputs, t, y, a)

    def _vjp_batched(self, t: Tensor, y: Tensor, a: Tensor) -> tuple[Tensor, Tensor, tuple[Tensor, ...]]:
        with torch.enable_grad():
            y = y.detach().requires_grad_(True)
            out = self.call(self.inputs, t, y)
            wanted = (y,) + self.inputs
            grads = torch.autograd.grad(out, wanted, a, retain_graph=bool(self.inputs), allow_unused=True)
            g_y = torch.zeros_like(y) if grads[0] is None else grads[0]
            if not self.inputs:
                return out.detach(), g_y, ()
            batch = y.shape[0]
            eye = torch.eye(batch, dtype=a.dtype, device=a.device).reshape(batch, batch, *(1,) * (a.ndim - 1))
            per_sample = torch.autograd.grad(
                out, self.inputs, eye * a.unsqueeze(0), is_grads_batched=True, allow_unused=True
            )
        g_inputs = tuple(
            torch.zeros((batch,) + x.shape, dtype=x.dtype, device=x.device) if g is None else g
            for g, x in zip(per_sample, self.inputs)
        )
        return out.detach(), g_y, g_inputs

    def vector_field(self, t: Tensor, z: Tensor, args: Any) -> Tensor:
        """The augmented field: `t` `[B]`, `z` `[B, 2N + P]` -> `[B, 2N + P]`."""
        n, batch = self.state_size, z.shape[0]
        y = z[:, :n].reshape(batch, *self.state_shape)
        a = z[:, n : 2 * n].reshape(batch, *self.state_shape)
        vjp = self._vjp_vmap if self.mode == "vmap" else self._vjp_batched
        out, g_y, g_inputs = vjp(t, y, a)
        z = torch.cat([out.reshape(batch, n), g_y.reshape(batch, n), *(g.reshape(batch, -1) for g in g_inputs)], dim=1)
        # The adjoints are minus the VJPs: one negation of their columns, not one per part.
        z[:, n:].neg_()
        return z

    def term(self) -> ODETerm:
        """The augmented system as a term for the core loop."""
        return ODETerm(self.vector_field)

    def state_vector_field(self, t: Tensor, z: Tensor, args: Any) -> Tensor:
        """$[\\dot y, \\dot a]$ without the parameter adjoint: `t` `[B]`, `z` `[B, 2N]` -> `[B, 2N]`.

        One batched call and one VJP in $y$: a sample's row depends on its own row only. Under
        `torch.compile` the VJP is `torch.func.vjp`, which traces into the step's graph, where
        `torch.autograd.grad` would split it; eagerly `autograd.grad` is the cheaper of the two."""
        n, batch = self.state_size, z.shape[0]
        a = z[:, n:].reshape(batch, *self.state_shape)
        y = z[:, :n].reshape(batch, *self.state_shape)
        if torch.compiler.is_compiling():
            out, pullback = torch.func.vjp(lambda y: self.field(t, y, self.args), y)
            (g_y,) = pullback(a)
            return torch.cat([out.reshape(batch, n), -g_y.reshape(batch, n)], dim=1)
        with torch.enable_grad():
            y = y.detach().requires_grad_(True)
            out = self.field(t, y, self.args)
            (g_y,) = torch.autograd.grad(out, y, a, allow_unused=True, materialize_grads=True)
        return torch.cat([out.detach().reshape(batch, n), -g_y.reshape(batch, n)], dim=1)

    def state_term(self) -> ODETerm:
        """The system $[y, a]$ as a term for the core loop (see `parameter_quadrature`)."""
        return ODETerm(self.state_vector_field)

    def parameter_quadrature(self, records: Sequence[StepRecord], skip: Tensor) -> Tensor | None:
        """`[P]` the batch sum of $\\int a^\\top \\partial_\\theta f\\,dt$ over the accepted steps
        in `records` (the loop's step records of a backward solve of `state_term`), by
        three-point Gauss-Legendre quadrature on each step's dense output; samples in
        `skip` `[B]` contribute nothing. `None` when there is nothing to differentiate or
        no step was taken."""
        if not records or not self.inputs:
            return None
        steps = Steps.stack(records)
        t0, t1, z0, coeffs, accepted = steps.t0, steps.t1, steps.y0, steps.coeffs, steps.accepted
        valid = accepted & ~skip[:, None]
        if not bool(valid.any()):
            # Every step in `records` was rejected or belongs to a skipped sample.
            return None
        if self.mode == "vmap":
            # Rows are independent: keep only the accepted steps, as one batch of rows.
            rows = valid.flatten().nonzero().squeeze(1)
            t0, t1, z0, coeffs = (x.flatten(0, 1).index_select(0, rows).unsqueeze(1) for x in (t0, t1, z0, coeffs))
            valid = torch.ones_like(t0, dtype=torch.bool)
        else:
            # Whole batches per call: keep the columns (loop iterations) where any step counts.
            columns = valid.any(dim=0).nonzero().squeeze(1)
            t0, t1, z0, coeffs, valid = (x.index_select(1, columns) for x in (t0, t1, z0, coeffs, valid))
        n = self.state_size
        theta = torch.tensor(GAUSS_NODES, dtype=z0.dtype, device=z0.device).reshape(3, 1, 1)
        # [node, B, S, 2N]: the state and adjoint at each node of each step; steps that do
        # not count (rejected, or after a sample finished) are zeroed, as is their weight.
        z = evaluate_polynomial(z0.unsqueeze(0), coeffs.unsqueeze(0), theta.expand(3, *t0.shape))
        z = torch.where(valid.unsqueeze(-1), z, 0.0)
        t = torch.where(valid, t0 + theta.to(t0.dtype) * (t1 - t0), t0)
        weight = torch.tensor(GAUSS_WEIGHTS, dtype=z0.dtype, device=z0.device).reshape(3, 1, 1)
        weight = weight * torch.where(valid, t1 - t0, 0.0).to(z0.dtype)
        # The backward solve runs from t_{k+1} down to t_k (h < 0); along it the parameter
        # adjoint grows by the integral of -a^T df/dtheta, i.e. by sum h w (-a)^T df/dtheta.
        shape = (*t.shape, *self.state_shape)
        cotangent = (-weight.unsqueeze(-1) * z[..., n:]).reshape(shape)
        with torch.enable_grad():
            out = self._field_on_nodes(t, z[..., :n].reshape(shape))
            grads = torch.autograd.grad(out, self.inputs, cotangent, allow_unused=True)
        return torch.cat([(torch.zeros_like(x) if g is None else g).flatten() for g, x in zip(grads, self.inputs)])

    def _field_on_nodes(self, t: Tensor, y: Tensor) -> Tensor:
        """The field at `t` `[3, B, S]`, `y` `[3, B, S, *state]`: one call on all rows in
        `"vmap"` mode (the field can be called on any number of samples), else one call per
        (node, step) on the whole batch, so that a field holding per-sample data sees its
        samples in order."""
        if self.mode == "vmap":
            return self.field(t.flatten(), y.flatten(0, 2), self.args).reshape(y.shape)
        blocks = [
            torch.stack([self.field(t[j, :, s], y[j, :, s], self.args) for s in range(t.shape[2])], dim=1)
            for j in range(t.shape[0])
        ]
        return torch.stack(blocks)

    def probe(self, t0: Tensor, y0: Tensor) -> None:
        """Check at `(t0 [B], y0 [B, *state])` that no hidden tensor needs a gradient, and pick
        the VJP scheme: `"vmap"` if calling the field one sample at a time reproduces the
        batched call, else `"batched"`."""
        t0, y0 = t0.detach(), y0.detach()
        with torch.enable_grad():
            out = self.call(self.inputs, t0, y0)
        check_hidden_leaves(out, self.inputs, "Backsolve")
        out = out.detach()
        same = self._per_sample_matches(t0, y0, out)
        if not same and self._per_sample_vjp is not self._eager_vjp:
            # The compiled VJPs failed or differ: the field is not traceable; use them eagerly.
            self._per_sample_vjp = self._eager_vjp
            same = self._per_sample_matches(t0, y0, out)
        self.mode = "vmap" if same else "batched"

    def _per_sample_matches(self, t0: Tensor, y0: Tensor, out: Tensor) -> bool:
        """Whether the per-sample VJPs' field values at `(t0 [B], y0 [B, *state])` reproduce the
        batched call's `out`, i.e. the field can be called one sample at a time."""
        try:
            per_sample = self._vjp_vmap(t0, y0, torch.zeros_like(y0))[0]
        except Exception:  # noqa: BLE001 - any failure under vmap (or compiling it) means: not per sample
            return False
        tol = 1e3 * torch.finfo(out.dtype).eps
        return per_sample.shape == out.shape and torch.allclose(
            per_sample, out, rtol=tol, atol=tol * float(out.abs().max().clamp_min(1.0))
        )


def check_hidden_leaves(out: Tensor, inputs: tuple[Tensor, ...], strategy: str) -> None:
    """Raise `IncompatibleTermError` when `out` depends on a tensor requiring grad that is not
    one of `inputs` (the term's parameters and the tensors in `args`), whose gradient
    `strategy` (the name of the gradient strategy) would silently lose."""
    if out.grad_fn is None:
        return
    known = {id(x) for x in inputs}
    stops = {x.grad_fn for x in inputs if x.grad_fn is not None}
    seen, stack = set(), [out.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen or node in stops:
            continue
        seen.add(node)
        variable = getattr(node, "variable", None)
        if variable is not None and id(variable) not in known:
            raise IncompatibleTermError(
                f"{strategy}: the vector field uses a tensor of shape {tuple(variable.shape)} that requires grad "
                f"but is neither a parameter of the term nor a tensor in `args`, so its gradient would be "
                f"silently lost; register it as an nn.Parameter of the module given to the term, pass it in "
                f"`args`, or use gradient=nct.Backprop()"
            )
        stack.extend(next_node for next_node, _ in node.next_functions)

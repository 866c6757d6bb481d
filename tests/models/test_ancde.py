"""Attentive neural CDE: the NCDE it reduces to when the attention is 1, the chain rule of the
attended control against autograd along a dense solve, the joint solve against the two-pass
solution, padding and batching invariance, gradients, named errors and solver swaps."""

from __future__ import annotations

import pytest
import torch

import neuralct as nct
from neuralct.data.series import Series, collate
from neuralct.errors import InvalidInputError
from neuralct.models.ancde import ANCDE, SoftAttention
from neuralct.models.base import SolveOptions
from neuralct.models.ncde import NeuralCDE

F64 = torch.float64
LENGTHS = (8, 5, 3)
ATTENTIONS = ("soft", "timewise")
TIGHT = SolveOptions(nct.Dopri5(), nct.PIDController(rtol=1e-10, atol=1e-10))


def _series(length: int, seed: int) -> Series:
    gen = torch.Generator().manual_seed(seed)
    times = 0.3 * seed + (0.2 + torch.rand(length, generator=gen, dtype=F64)).cumsum(0)
    values = torch.randn(length, 2, generator=gen, dtype=F64)
    if length > 4:
        values[1, 0] = values[3, 1] = float("nan")
    return Series(times, values)


def _batch():
    return collate([_series(n, seed) for seed, n in enumerate(LENGTHS)])


def _model(attention: str, **options) -> ANCDE:
    torch.manual_seed(1)
    return ANCDE(2, 4, 3, attention=attention, attention_hidden=8, width=16, **options).double()


def _force_attention_to_one(model: ANCDE) -> None:
    """$a = \\sigma(\\cdot) = 1$ exactly in float64 (and $a (1 - a) = 0$): the argument stays > 40."""
    with torch.no_grad():
        if isinstance(model.attention, SoftAttention):
            model.embed_bottom.bias.fill_(100.0)  # h moves by at most the control's total variation
        else:
            model.attention.fc.weight.mul_(0.1)
            model.attention.fc.bias.fill_(100.0)


@pytest.mark.parametrize("attention", ATTENTIONS)
@pytest.mark.parametrize("options", [SolveOptions(nct.RK4(), nct.KnotToKnot()), TIGHT])
def test_with_the_attention_at_one_ancde_is_the_neural_cde_with_its_top_field(attention, options):
    model, batch = _model(attention), _batch()
    _force_attention_to_one(model)
    ncde = NeuralCDE(2, 4, 3, width=16).double()
    for mine, theirs in ((ncde.embed, model.embed_top), (ncde.field, model.top), (ncde.head, model.head)):
        mine.load_state_dict(theirs.state_dict())
    term = model.term(batch)
    states = nct.solve(term, model.initial_state(batch), batch.times, **options.solve_kwargs()).ys
    attention = model.attention(states[..., : term.path.channels])
    assert torch.equal(attention, torch.ones_like(attention))
    # Fixed steps: the z half of the state takes the very same steps (measured 0);
    # adaptive ones: h enters the error norm, so the steps differ within tolerance (measured 8e-8).
    assert (model.run(batch, options).predictions - ncde.run(batch, options).predictions).abs().max() < 1e-6


@torch.no_grad()  # autograd below differentiates in t only: no graph through the solve
def _dense_solve(model: ANCDE, batch):
    term = model.term(batch)
    pid = nct.PIDController(rtol=1e-12, atol=1e-12)
    return term, nct.solve(
        term, model.initial_state(batch), batch.times, solver=nct.Dopri5(), controller=pid, dense=True
    )


def _inside(batch, fractions=(0.25, 0.6)) -> torch.Tensor:
    """`[B, K]` times inside each sample's real observation gaps (padded gaps repeat the last)."""
    gaps = batch.times.diff(dim=1)
    t = torch.cat([batch.times[:, :-1] + f * gaps for f in fractions], dim=1)
    return torch.minimum(t, batch.last_time[:, None] - 1e-3)


def _time_derivative(fn, t: torch.Tensor) -> torch.Tensor:
    """`[B, C]` $d/dt$ of `fn(t)` `[B, C]` at `t` `[B]` by autograd (samples are independent)."""
    t = t.detach().requires_grad_(True)
    with torch.enable_grad():
        value = fn(t)
        columns = [torch.autograd.grad(value[:, c].sum(), t, retain_graph=True)[0] for c in range(value.shape[1])]
    return torch.stack(columns, dim=1)


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_the_analytic_attended_rate_matches_autograd_of_the_attended_control(attention):
    """$\\dot Y$ of the term against $d/dt$ of $t \\mapsto X(t) \\odot a(h(t))$, $h$ the dense solution."""
    model, batch = _model(attention), _batch()
    term, solution = _dense_solve(model, batch)
    split = term.path.channels
    attended = lambda t: term.path.evaluate(t) * model.attention(solution.evaluate(t)[:, :split])  # noqa: E731
    for t in _inside(batch).T:
        _, value, rate = term.attended(t, solution.evaluate(t)[:, :split])
        assert torch.allclose(value, attended(t), atol=1e-14, rtol=0)
        # Limited by the derivative of the dense interpolant of h: measured 2e-8.
        assert (rate - _time_derivative(attended, t)).abs().max() < 1e-6


class DenseAttendedPath:
    """$Y(t) = X(t) \\odot a(h(t))$ from a bottom solve's dense output; $\\dot Y$ by autograd."""

    def __init__(self, path, attention, bottom):
        self.path, self.attention, self.bottom = path, attention, bottom

    def evaluate(self, t):
        # A last stage may overshoot the end of the bottom solve by a rounding error.
        inside = torch.minimum(torch.maximum(t, self.bottom.ts[:, 0]), self.bottom.t_final)
        return self.path.evaluate(t) * self.attention(self.bottom.evaluate(inside))

    def derivative(self, t):
        return _time_derivative(self.evaluate, t)

    def jump_times(self):
        return self.path.jump_times()


@pytest.mark.parametrize("attention", ATTENTIONS)
@torch.no_grad()
def test_the_joint_solve_equals_a_bottom_pass_then_a_top_pass(attention):
    model, batch = _model(attention), _batch()
    term, joint = _dense_solve(model, batch)
    y0 = model.initial_state(batch)
    split = term.path.channels
    pid = dict(solver=nct.Dopri5(), controller=nct.PIDController(rtol=1e-12, atol=1e-12))
    bottom = nct.solve(nct.ControlTerm(model.bottom, term.path), y0[:, :split], batch.times, dense=True, **pid)
    attended = DenseAttendedPath(term.path, model.attention, bottom)
    top = nct.solve(nct.ControlTerm(model.top, attended), y0[:, split:], batch.times, **pid)
    assert (joint.ys[..., :split] - bottom.ys).abs().max() < 1e-8  # measured 1e-9
    assert (joint.ys[..., split:] - top.ys).abs().max() < 1e-7  # measured 1.5e-9
    assert (joint.ys[:, -1, split:] - y0[:, split:]).abs().min() > 1e-3  # the top state moved


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_a_sample_padded_in_a_batch_predicts_what_it_predicts_alone(attention):
    model = _model(attention, count_channels=True)
    together = model(_batch())
    for b, length in enumerate(LENGTHS):
        alone = model(collate([_series(length, b)]))
        assert torch.allclose(together[b], alone[0], atol=1e-10, rtol=0)  # measured 2e-14


@pytest.mark.parametrize(
    "options, tol",
    [
        (None, 1e-3),  # the default Tsit5 at rtol 1e-3: measured 6e-5
        (SolveOptions(nct.Heun(), nct.ConstantStep(0.05)), 1e-3),  # measured 2e-5
        (SolveOptions(nct.RK4(), nct.KnotToKnot()), 1e-2),  # one step per observation gap: measured 5e-4
    ],
)
def test_other_solvers_solve_the_same_model_within_their_accuracy(options, tol):
    model, batch = _model("timewise", interpolation="linear"), _batch()
    with torch.no_grad():
        reference = model.run(batch, TIGHT).predictions
        assert (model.run(batch, options).predictions - reference).abs().max() < tol


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(attention="hard"), "`attention` must be one of 'soft', 'timewise'; got 'hard'"),
        (dict(attention_hidden=0), "`attention_hidden` must be a positive int; got 0"),
        (dict(hidden=-2), "`hidden` must be a positive int; got -2"),
        (dict(outputs=None), "`outputs` must be a positive int"),
        (dict(interpolation="spline"), "`interpolation` must be one of"),
        (dict(count_channels="yes"), "`count_channels` must be True or False"),
    ],
)
def test_bad_constructor_arguments_raise_named_errors(options, message):
    arguments = dict(channels=2, hidden=4, outputs=1) | options
    with pytest.raises(InvalidInputError, match=message):
        ANCDE(arguments.pop("channels"), arguments.pop("hidden"), arguments.pop("outputs"), **arguments)

"""The numerics of a run: from the config's strings to `SolveOptions`, and the dry run that checks
them against the model before training.

`configured_options(config, model)` turns `solver`, `controller`, `rtol`/`atol`/`step`,
`gradient`, `dt0`, `compile` and `max_steps` into the `SolveOptions` the model is run under.
Without a `solver`, the model keeps its own numerics, and `gradient`, `dt0` and `compile` change
only those fields of them. Gradient specs:

- `"backprop"`: backpropagation through the solver's operations (the default);
- `"checkpoint:K"`: the same, storing the loop state every K steps and recomputing in between;
- `"backsolve"`: the continuous adjoint, solved backwards at the forward tolerances;
- `"backsolve-seminorm"`: the same with the parameter adjoint left out of the error norm.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import torch

from .. import registry
from .._checks import check_choice, check_int, check_number
from ..data.controls import KINDS
from ..data.series import IrregularBatch
from ..errors import IncompatibleTermError, InvalidInputError, NeuralCTError, SolveFailed
from ..gradients import AbstractGradient, Backprop, Backsolve
from ..models.base import AbstractSequenceModel, SolveOptions

if TYPE_CHECKING:
    from .config import FitConfig

DTYPES = {"float32": torch.float32, "float64": torch.float64}
GRADIENTS = ("backprop", "checkpoint:K", "backsolve", "backsolve-seminorm")


def gradient_from_spec(spec: str) -> AbstractGradient:
    """The gradient strategy a spec of `GRADIENTS` names (`"checkpoint:8"` is
    `Backprop(checkpoint_every=8)`).

    Raises:
        InvalidInputError: an unknown spec, or a checkpoint interval that is not a positive int.
    """
    name, colon, every = spec.partition(":")
    if name == "checkpoint" and colon:
        if not every.isdigit() or int(every) < 1:
            raise InvalidInputError(f"`gradient` 'checkpoint:K' needs a positive int K; got {spec!r}")
        return Backprop(checkpoint_every=int(every))
    made = {"backprop": Backprop, "backsolve": Backsolve, "backsolve-seminorm": lambda: Backsolve(seminorm=True)}
    if colon or name not in made:
        check_choice("gradient", spec, GRADIENTS)  # raises: the message lists the specs
    return made[name]()


def check_numerics_keys(config: FitConfig) -> None:
    """Named `InvalidInputError` for a bad `gradient`, `dtype`, `dt0`, `interpolation` or `workers`."""
    gradient_from_spec(config.gradient)
    check_choice("dtype", config.dtype, DTYPES)
    check_number("dt0", config.dt0, 0, open_low=True, optional=True)
    if config.interpolation is not None:
        check_choice("interpolation", config.interpolation, KINDS)
    check_int("workers", config.workers, 0)


def configured_options(config: FitConfig, model: AbstractSequenceModel | None = None) -> SolveOptions | None:
    """The `SolveOptions` of `config` for `model` (see the module docstring); `None` when the model
    keeps its natural numerics unchanged.

    Raises:
        InvalidInputError: `gradient`, `dt0` or `compile` asked of a model that solves nothing,
            or without the model to take its numerics from.
    """
    gradient = gradient_from_spec(config.gradient)
    if config.solver is not None:
        solver = registry.solver(config.solver, **config.solver_options)
        controller = config.controller or ("pid" if solver.adaptive else "knots" if config.step is None else "constant")
        if controller == "pid":
            made = registry.controller("pid", rtol=config.rtol, atol=config.atol)
        elif controller == "constant":
            made = registry.controller("constant", dt=config.step)
        else:
            made = registry.controller(controller)
        return SolveOptions(
            solver, made, gradient=gradient, dt0=config.dt0, max_steps=config.max_steps, compile=config.compile
        )
    asked = (("gradient", gradient, Backprop()), ("dt0", config.dt0, None), ("compile", config.compile, False))
    changed = {key: value for key, value, default in asked if value != default}
    if not changed:
        return None
    own = None if model is None else model.default_solve_options()
    if own is None:
        what = "a model to take the numerics from"
        if model is not None:
            what = f"a model that solves something; {config.model!r} does not"
        raise InvalidInputError(f"{', '.join(f'`{key}`' for key in changed)} need(s) {what} (or give a `solver`)")
    return dataclasses.replace(own, **changed)


def check_config_numerics(model: AbstractSequenceModel, data: IrregularBatch, config: FitConfig) -> None:
    """`check_numerics` under `config`'s numerics; a solver that cannot integrate the model's term
    fails with the registered solvers that can (each tried on the same two-sample dry run).

    Raises:
        IncompatibleTermError: the configured solver cannot integrate the model's term.
        InvalidInputError: as `check_numerics` raises it.
    """
    try:
        check_numerics(model, data, config.solve_options(model))
    except IncompatibleTermError as error:
        valid = [
            name for name in registry.names("solver") if ":" not in name and _integrates(model, data, config, name)
        ]
        raise IncompatibleTermError(
            f"{error}. Solvers that can integrate model {config.model!r}: {', '.join(valid) or 'none'}"
        ) from None


def _integrates(model: AbstractSequenceModel, data: IrregularBatch, config: FitConfig, solver: str) -> bool:
    try:
        options = config.replace(solver=solver, solver_options={}, controller=None).solve_options(model)
        check_numerics(model, data, options)
    except NeuralCTError:
        return False
    return True


def check_numerics(model: AbstractSequenceModel, data: IrregularBatch, options: SolveOptions | None) -> None:
    """Run `model` in training mode on two samples of `data` under `options`, without gradients,
    so that a solver that cannot integrate the model's term (an ODE solver on the noisy RNN's
    SDE, options for a model that solves nothing) fails before training starts, with the error
    that names both. A solve that fails on those samples is not such an error: training counts
    (or, strict, stops on) the samples whose solves fail.

    Raises:
        IncompatibleTermError, InvalidInputError: as `solve` and the model raise them.
    """
    was_training = model.training
    model.train()
    try:
        with torch.no_grad():
            model.run(data.select(slice(0, min(2, data.batch_size))), options)
    except SolveFailed:
        pass
    finally:
        model.train(was_training)

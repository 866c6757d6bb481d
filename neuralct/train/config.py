"""The configuration of one training run, validated before anything is trained.

A `FitConfig` names everything by string (model, dataset, solver, controller, schedule) so that it
can come from a YAML or JSON file (`FitConfig.from_file`) or command-line flags. Constructing one
validates it: every name is resolved through the registry (an unknown one fails with the valid
choices), `FitConfig.from_mapping` rejects unknown keys (and a config file a key given twice), an
unknown key of `solver_options` fails with a suggestion (those of `model_options` and
`dataset_options` when the model is built and the data loaded, before training), and wrong types
and out-of-range values fail by name. `check_numerics` then runs the model under the configured numerics on two samples,
so that a solver that cannot integrate the model's term fails before training starts.

```python
from neuralct.train.config import FitConfig

config = FitConfig.from_mapping({"model": "ltc", "missing": 0.5, "solver": "tsit5", "rtol": 1e-4})
config.solve_options()  # SolveOptions(Tsit5(), PIDController(rtol=1e-4, atol=1e-6))
```
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from .. import registry
from .._choices import did_you_mean
from ..data.datasets import available
from ..data.series import IrregularBatch
from ..errors import IncompatibleTermError, InvalidInputError, NeuralCTError, SolveFailed
from ..models.base import AbstractSequenceModel, SolveOptions
from .mappings import read_mapping

_ADAPTIVE_DEFAULTS = {"rtol": 1e-3, "atol": 1e-6}
SCHEDULES = {
    "cosine": "cosine annealing to 0 over the epochs",
    "constant": "the learning rate throughout",
    "plateau": "halved after 2 epochs without a better validation loss",
}


@dataclass(frozen=True)
class FitConfig:
    """Everything a training run depends on.

    Args:
        model: a registered model name (`registry.names("model")`).
        dataset: a dataset name (`neuralct.data.datasets.available()`).
        missing: fraction of each channel's observations dropped at random, in `[0, 1)`.
        solver: a registered solver name, or `None` for the model's natural numerics.
        solver_options: keyword arguments of the solver, e.g. `{"solver": "tsit5"}` for the
            Runge-Kutta method inside `"method_of_steps"` (delay models such as tau-GRU).
        controller: `"pid"`, `"constant"` or `"knots"`; `None` picks `"pid"` for an adaptive
            solver, and for a fixed-step one `"constant"` when `step` is given, else `"knots"`
            (one step per observation gap).
        rtol: relative tolerance of the `"pid"` controller.
        atol: absolute tolerance of the `"pid"` controller.
        step: the step of the `"constant"` controller.
        hidden: hidden units of the model.
        epochs: training epochs (Adam, with the learning-rate `schedule` over them).
        batch_size: minibatch size.
        lr: Adam's (initial) learning rate.
        schedule: the learning-rate schedule: `"cosine"` (annealed to 0 over `epochs`),
            `"constant"`, or `"plateau"` (halved after 2 epochs without a better validation loss).
        seed: seed of the initialisation, the dropped observations, the splits and the shuffling.
        clip_norm: global gradient-norm clipping, or `None`.
        patience: stop early after this many epochs without a better validation loss (`None`: never).
        max_steps: steps a solve may take per sample before it fails (with `solver` set).
        device: `"cpu"` or `"cuda"` (under torchrun, each process takes GPU `LOCAL_RANK`).
        monitor_jacobian: after each epoch, the largest real part of the vector field's Jacobian
            eigenvalues along the model's solves of 16 validation series (`max_jacobian_real` in
            the metrics; continuous models with an ODE term only, else empty).
        strict: stop at the first failed solve; by default a sample whose solve fails is left
            out of its minibatch's loss and step and counted (`train_failed`, `val_failed` and
            `test_failed` in the metrics and result), and the others are scored.
        model_options: further keyword arguments of the model.
        dataset_options: further keyword arguments of the dataset.
    """

    model: str = "tau_gru"
    dataset: str = "japanese_vowels"
    missing: float = 0.3
    solver: str | None = None
    solver_options: Mapping[str, Any] = field(default_factory=dict)
    controller: str | None = None
    rtol: float = _ADAPTIVE_DEFAULTS["rtol"]
    atol: float = _ADAPTIVE_DEFAULTS["atol"]
    step: float | None = None
    hidden: int = 64
    epochs: int = 60
    batch_size: int = 16
    lr: float = 3e-3
    schedule: str = "cosine"
    seed: int = 0
    clip_norm: float | None = None
    patience: int | None = None
    max_steps: int = 4096
    device: str = "cpu"
    monitor_jacobian: bool = False
    strict: bool = False
    model_options: Mapping[str, Any] = field(default_factory=dict)
    dataset_options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_types(self)
        _check_name("model", self.model, list(registry.names("model")))
        _check_name("dataset", self.dataset, list(available()))
        if self.solver is not None:
            with naming_options("solver_options"):
                registry.solver(self.solver, **self.solver_options)  # unknown names raise with the valid choices
        elif self.solver_options:
            raise InvalidInputError("`solver_options` need a `solver`")
        if self.controller is not None:
            _check_name("controller", self.controller, list(registry.names("controller")))
        _check_name("schedule", self.schedule, list(SCHEDULES))
        if self.device != "cpu" and not self.device.startswith("cuda"):
            raise InvalidInputError(f"`device` must be 'cpu' or 'cuda' (or 'cuda:N'); got {self.device!r}")
        if not 0.0 <= self.missing < 1.0:
            raise InvalidInputError(f"`missing` must be in [0, 1) (1 would drop everything); got {self.missing!r}")
        for name in ("rtol", "atol", "lr"):
            _check_positive(name, getattr(self, name))
        for name in ("step", "clip_norm"):
            if getattr(self, name) is not None:
                _check_positive(name, getattr(self, name))
        for name in ("hidden", "epochs", "batch_size", "max_steps"):
            if getattr(self, name) < 1:
                raise InvalidInputError(f"`{name}` must be a positive int; got {getattr(self, name)!r}")
        if self.patience is not None and self.patience < 1:
            raise InvalidInputError(f"`patience` must be a positive int or None; got {self.patience!r}")
        if self.seed < 0:
            raise InvalidInputError(f"`seed` must be a non-negative int; got {self.seed!r}")
        if self.controller == "constant" and self.step is None:
            raise InvalidInputError("controller 'constant' needs `step` (the fixed step size)")

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> FitConfig:
        """A config from a YAML (`.yaml`, `.yml`) or JSON file of config keys, with `overrides`
        on top (command-line flags)."""
        return cls.from_mapping({**read_mapping(path), **overrides})

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> FitConfig:
        """A config from a mapping (a parsed YAML file, flags), rejecting unknown keys by name."""
        valid = [f.name for f in fields(cls)]
        for key in values:
            if key not in valid:
                raise InvalidInputError(
                    f"unknown config key {key!r}{did_you_mean(str(key), valid)} Valid keys: {', '.join(valid)}"
                )
        return cls(**values)

    def replace(self, **changes: Any) -> FitConfig:
        """A copy with `changes` (validated again)."""
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """The config as plain values (for the run folder's resolved config)."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}

    def solve_options(self) -> SolveOptions | None:
        """The numerics this config asks for, or `None` for the model's natural ones."""
        if self.solver is None:
            return None
        solver = registry.solver(self.solver, **self.solver_options)
        controller = self.controller or ("pid" if solver.adaptive else "knots" if self.step is None else "constant")
        if controller == "pid":
            made = registry.controller("pid", rtol=self.rtol, atol=self.atol)
        elif controller == "constant":
            made = registry.controller("constant", dt=self.step)
        else:
            made = registry.controller(controller)
        return SolveOptions(solver, made, max_steps=self.max_steps)


@contextlib.contextmanager
def naming_options(key: str) -> Iterator[None]:
    """Report an option that the registry or the dataset loader does not know (a `TypeError`
    naming it, with a suggestion) as an `InvalidInputError` of the config key `key`."""
    try:
        yield
    except TypeError as error:
        raise InvalidInputError(f"`{key}`: {error}") from error


def _check_types(config: FitConfig) -> None:
    """Named `InvalidInputError` for a value of the wrong type (YAML and flags give strings)."""
    expected = {
        "model": (str,),
        "dataset": (str,),
        "missing": (int, float),
        "solver": (str, type(None)),
        "controller": (str, type(None)),
        "rtol": (int, float),
        "atol": (int, float),
        "step": (int, float, type(None)),
        "hidden": (int,),
        "epochs": (int,),
        "batch_size": (int,),
        "lr": (int, float),
        "schedule": (str,),
        "seed": (int,),
        "clip_norm": (int, float, type(None)),
        "patience": (int, type(None)),
        "max_steps": (int,),
        "device": (str,),
        "monitor_jacobian": (bool,),
        "strict": (bool,),
        "model_options": (Mapping,),
        "solver_options": (Mapping,),
        "dataset_options": (Mapping,),
    }
    for name, kinds in expected.items():
        value = getattr(config, name)
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
            wanted = " or ".join("None" if k is type(None) else k.__name__ for k in kinds)
            raise InvalidInputError(f"`{name}` must be {wanted}; got {value!r} ({type(value).__name__})")


def _check_name(kind: str, name: str, valid: list[str]) -> None:
    if name not in valid:
        raise InvalidInputError(f"unknown {kind} {name!r}{did_you_mean(name, valid)} Valid choices: {', '.join(valid)}")


def _check_positive(name: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise InvalidInputError(f"`{name}` must be a positive finite number; got {value!r}")


def _plain(value: Any) -> Any:
    return dict(value) if isinstance(value, Mapping) else value


def check_config_numerics(model: AbstractSequenceModel, data: IrregularBatch, config: FitConfig) -> None:
    """`check_numerics` under `config`'s numerics; a solver that cannot integrate the model's term
    fails with the registered solvers that can (each tried on the same two-sample dry run).

    Raises:
        IncompatibleTermError: the configured solver cannot integrate the model's term.
        InvalidInputError: as `check_numerics` raises it.
    """
    try:
        check_numerics(model, data, config.solve_options())
    except IncompatibleTermError as error:
        valid = [
            name for name in registry.names("solver") if ":" not in name and _integrates(model, data, config, name)
        ]
        raise IncompatibleTermError(
            f"{error}. Solvers that can integrate model {config.model!r}: {', '.join(valid) or 'none'}"
        ) from None


def _integrates(model: AbstractSequenceModel, data: IrregularBatch, config: FitConfig, solver: str) -> bool:
    try:
        check_numerics(model, data, config.replace(solver=solver, solver_options={}, controller=None).solve_options())
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

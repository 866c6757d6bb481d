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
from .._checks import did_you_mean
from ..data.datasets import available
from ..errors import InvalidInputError
from ..models.base import AbstractSequenceModel, SolveOptions
from .mappings import read_mapping
from .numerics import DTYPES, check_numerics_keys, configured_options

_ADAPTIVE_DEFAULTS = {"rtol": 1e-3, "atol": 1e-6}
TASKS = {
    "classification": "class labels (cross-entropy, accuracy)",
    "regression": "numeric targets (squared error, MAE)",
    "forecasting": "regression whose validation split is the last stretch of the training period",
}
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
        dataset: a dataset name (`neuralct.data.datasets.available()`); `None` with `data`, and
            `"japanese_vowels"` when neither is given.
        data: a data file of the user's (`.ts`, long `.csv` or `.npz`; see
            `neuralct.data.read_series_file`) to train on instead of a named dataset; its test
            split is `test_data`, else the file's `split` column, else a seeded stratified 20%.
        test_data: the test file that goes with `data` (the same format).
        target: the target column of a CSV `data` file (default `"target"`).
        task: `"classification"`, `"regression"` or `"forecasting"` (regression whose
            validation split is the last stretch of the training period, not a random draw);
            `None` lets the data decide (integer or string targets classify).
        normalize: how inputs are scaled, fitted on the training split only
            (`neuralct.data.NORMALIZATIONS`: `"standard"`, `"robust"`, `"series"`, `"asinh"`, ...).
        time_scale: times are multiplied by it (series without times: index * `time_scale`).
        missing: fraction of each channel's observations dropped at random, in `[0, 1)`
            (default 0.3 for a named dataset, the benchmark protocol; 0 for a `data` file).
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
        gradient: how gradients flow through the solves: `"backprop"`, `"checkpoint:K"`
            (backprop recomputing stretches of K steps), `"backsolve"` or `"backsolve-seminorm"`
            (the continuous adjoint, `Backsolve(seminorm=...)`).
        dtype: `"float32"` or `"float64"` for the model and the data.
        compile: run each solver step through `torch.compile` (explicit RK, LTC fused, method of
            steps, fixed-step SDEs on a `BrownianGrid`).
        dt0: the first step of an adaptive solve (`None`: chosen per sample).
        interpolation: the control path of a CDE model (`ncde`, `ancde`): one of
            `neuralct.data.controls.KINDS`; `None` keeps the model's default.
        workers: processes that prepare minibatches in the background (0: the training process).
        bucket: group minibatches by series length, so short series do not pay for long ones'
            padding (each epoch shuffles within and across the groups).
        model_options: further keyword arguments of the model.
        dataset_options: further keyword arguments of the dataset.
    """

    model: str = "tau_gru"
    dataset: str | None = None
    data: str | None = None
    test_data: str | None = None
    target: str | None = None
    task: str | None = None
    normalize: str = "standard"
    time_scale: float = 1.0
    missing: float | None = None
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
    gradient: str = "backprop"
    dtype: str = "float32"
    compile: bool = False
    dt0: float | None = None
    interpolation: str | None = None
    workers: int = 0
    bucket: bool = True
    model_options: Mapping[str, Any] = field(default_factory=dict)
    dataset_options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _resolve_defaults(self)
        _check_types(self)
        _check_name("model", self.model, list(registry.names("model")))
        _check_source(self)
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
        if self.missing is not None and not 0.0 <= self.missing < 1.0:
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
        check_numerics_keys(self)

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

    def solve_options(self, model: AbstractSequenceModel | None = None) -> SolveOptions | None:
        """The numerics this config asks for: `solver` with its controller, or, without a
        `solver`, `model`'s own numerics with this config's `gradient`, `dt0` and `compile`
        (see `neuralct.train.numerics`); `None` for the model's natural ones unchanged."""
        return configured_options(self, model)

    @property
    def missing_rate(self) -> float:
        """`missing`, or its default: 0.3 for a named dataset (the benchmark protocol), 0 for a file."""
        if self.missing is not None:
            return self.missing
        return 0.3 if self.data is None else 0.0

    @property
    def torch_dtype(self) -> torch.dtype:
        """`dtype` as a `torch.dtype`."""
        return DTYPES[self.dtype]


@contextlib.contextmanager
def naming_options(key: str) -> Iterator[None]:
    """Report an option that the registry or the dataset loader does not know (a `TypeError`
    naming it, with a suggestion) as an `InvalidInputError` of the config key `key`."""
    try:
        yield
    except TypeError as error:
        raise InvalidInputError(f"`{key}`: {error}") from error


def _resolve_defaults(config: FitConfig) -> None:
    """The default dataset, when neither `dataset` nor `data` is given."""
    if config.dataset is None and config.data is None:
        object.__setattr__(config, "dataset", "japanese_vowels")


def _check_source(config: FitConfig) -> None:
    """One data source: a named dataset or a file (with the keys that go with each)."""
    if config.data is not None:
        if config.dataset is not None:
            raise InvalidInputError(f"give `dataset` or `data`, not both; got {config.dataset!r} and {config.data!r}")
        if config.dataset_options:
            raise InvalidInputError("`dataset_options` apply to a named `dataset`, not to a `data` file")
    else:
        _check_name("dataset", config.dataset, list(available()))
        for key in ("test_data", "target"):
            if getattr(config, key) is not None:
                value = getattr(config, key)
                raise InvalidInputError(f"`{key}` goes with a `data` file; got {key}={value!r} without one")
    if config.task is not None:
        _check_name("task", config.task, list(TASKS))
    _check_positive("time_scale", config.time_scale)


def _check_types(config: FitConfig) -> None:
    """Named `InvalidInputError` for a value of the wrong type (YAML and flags give strings)."""
    expected = {
        "model": (str,),
        "dataset": (str, type(None)),
        "data": (str, type(None)),
        "test_data": (str, type(None)),
        "target": (str, type(None)),
        "task": (str, type(None)),
        "normalize": (str,),
        "time_scale": (int, float),
        "missing": (int, float, type(None)),
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
        "gradient": (str,),
        "dtype": (str,),
        "compile": (bool,),
        "dt0": (int, float, type(None)),
        "interpolation": (str, type(None)),
        "workers": (int,),
        "bucket": (bool,),
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

"""Robustness of a trained model: its accuracy under test-time perturbations of the input series
(`neuralct.stability.perturbations`) and under other numerics at inference.

`robustness_curve` scores a model on perturbed copies of a split (averaged over `repeats` draws)
next to the clean baseline; `solver_swap` scores it under several numerics; `run_robustness`
does both for the best checkpoint of a finished `neuralct fit` run folder.

```python
from neuralct.stability.perturbations import GaussianNoise, TimeJitter
from neuralct.stability.robustness import robustness_curve

rows = robustness_curve(model, test, [GaussianNoise(0.1), GaussianNoise(0.3), TimeJitter(0.25)], repeats=3)
rows[0]  # {'perturbation': 'none', 'level': 0.0, 'accuracy': 0.91, 'loss': 0.24, 'vf_evals': 38.2, ...}
```
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from .._checks import check_int, describe
from ..data.series import IrregularBatch
from ..errors import IncompatibleTermError, InvalidInputError, SolveFailed
from ..models.base import AbstractSequenceModel, SolveOptions
from ..train import EpochResult, FitConfig, evaluate, finished_run_config, load_run, session
from .perturbations import AbstractPerturbation, DropObservations, GaussianNoise, SaltAndPepper, TimeJitter


def robustness_curve(
    model: AbstractSequenceModel,
    data: IrregularBatch,
    perturbations: Iterable[AbstractPerturbation],
    *,
    options: SolveOptions | None = None,
    seed: int = 0,
    repeats: int = 1,
) -> list[dict[str, Any]]:
    """Score `model` on `data` and on perturbed copies of it.

    Each perturbation draws from its own generator seeded by `seed`, so its result does not depend
    on the other perturbations in the list, and levels of one kind share their random numbers
    (smoother curves). The metrics of a perturbation are averaged over `repeats` draws.

    Args:
        model: any sequence model (in eval mode while scored).
        data: the batch scored, with targets `[B]` (class indices) or floating targets.
        perturbations: the perturbations, one row each.
        options: the numerics of every forward pass (`None`: the model's own).
        seed: the seed of the draws, a non-negative int.
        repeats: the draws averaged per perturbation, a positive int.

    Returns:
        Rows, the clean baseline first (`perturbation` `"none"`, level 0, exactly `evaluate` on
        `data`), then one per perturbation in order: `perturbation` (its kind), `parameter`,
        `level`, `label`, `accuracy` (classification) or `mae` (regression), `loss`, `vf_evals`
        (per sample), `repeats`.

    Raises:
        InvalidInputError: a non-model, a batch without usable targets, an item that is not a
            perturbation, bad `options`, `seed` or `repeats`.
    """
    _check_scoring(model, data, options)
    perturbations = _check_perturbations(perturbations)
    check_int("seed", seed, low=0)
    check_int("repeats", repeats)
    metric = _metric(data)
    clean = evaluate(model, data, options=options)
    rows = [_row("none", None, 0.0, "clean", metric, [clean])]
    for perturbation in perturbations:
        generator = torch.Generator().manual_seed(seed)
        results = [evaluate(model, perturbation.apply(data, generator), options=options) for _ in range(repeats)]
        rows.append(
            _row(perturbation.kind, perturbation.parameter, perturbation.level, perturbation.label, metric, results)
        )
    return rows


def solver_swap(
    model: AbstractSequenceModel, data: IrregularBatch, choices: Mapping[str, SolveOptions | None]
) -> list[dict[str, Any]]:
    """Score `model` on `data` under each numerics in `choices`: "what if I swap the solver at inference?".

    A numerics the model cannot run with (a solver that cannot integrate its term, options for a
    model that solves nothing, a solve that fails) gives a row with `error` set to the reason and
    no metrics, so one bad choice does not hide the others.

    Args:
        model: any sequence model.
        data: the batch scored, with targets.
        choices: label -> `SolveOptions`, or `None` for the model's own numerics.

    Returns:
        One row per choice, in order: `label`, `numerics` (a description), `accuracy` or `mae`,
        `loss`, `vf_evals` (per sample) and `error` (`None` when the pass ran).

    Raises:
        InvalidInputError: a non-model, a batch without usable targets, an empty `choices` or a
            choice that is neither `SolveOptions` nor `None`.
    """
    if not isinstance(choices, Mapping) or not choices:
        raise InvalidInputError(f"`choices` must be a non-empty dict of label -> SolveOptions | None; got {choices!r}")
    for label, options in choices.items():
        if options is not None and not isinstance(options, SolveOptions):
            raise InvalidInputError(f"`choices[{label!r}]` must be SolveOptions or None; got {describe(options)}")
    _check_scoring(model, data, None)
    metric = _metric(data)
    return [_swap_row(model, data, str(label), options, metric) for label, options in choices.items()]


def run_robustness(
    run_dir: Path | str,
    *,
    sigmas: Sequence[float] = (0.1, 0.2, 0.3),
    fractions: Sequence[float] = (0.05, 0.1, 0.2),
    drops: Sequence[float] = (0.2, 0.4, 0.6),
    jitters: Sequence[float] = (0.1, 0.25, 0.5),
    solvers: Mapping[str, SolveOptions | None] | None = None,
    seed: int = 0,
) -> dict[str, list[dict[str, Any]]]:
    """The robustness of the best checkpoint of a finished `neuralct fit` run, on its test split.

    Args:
        run_dir: the run folder (with `config.json` and `best.pt`).
        sigmas: levels of `GaussianNoise` (in units of the normalised data).
        fractions: levels of `SaltAndPepper`.
        drops: levels of `DropObservations`.
        jitters: levels of `TimeJitter`.
        solvers: label -> numerics for `solver_swap`; `None`: the run's trained numerics, RK4 with
            one step per gap and Dopri5 at the run's tolerances (`default_solvers`).
        seed: the seed of the perturbations.

    Returns:
        `{"curves": robustness_curve rows under the run's numerics, "solvers": solver_swap rows}`.

    Raises:
        InvalidInputError: no finished run in `run_dir` (no `config.json` or no `best.pt`), or a bad level.
    """
    run_dir = Path(run_dir)
    config = finished_run_config(run_dir)
    perturbations = standard_perturbations(sigmas=sigmas, fractions=fractions, drops=drops, jitters=jitters)
    choices = default_solvers(config) if solvers is None else solvers
    with session(config.device) as workers:
        run = load_run(run_dir, config, device=workers.device)
        options = config.solve_options(run.model)
        curves = robustness_curve(run.model, run.splits.test, perturbations, options=options, seed=seed)
        return {"curves": curves, "solvers": solver_swap(run.model, run.splits.test, choices)}


def standard_perturbations(
    *, sigmas: Sequence[float], fractions: Sequence[float], drops: Sequence[float], jitters: Sequence[float]
) -> list[AbstractPerturbation]:
    """The four families at the given levels, in the order noise, salt-and-pepper, drop, jitter."""
    families = ((GaussianNoise, "sigmas", sigmas), (SaltAndPepper, "fractions", fractions))
    families += ((DropObservations, "drops", drops), (TimeJitter, "jitters", jitters))
    made: list[AbstractPerturbation] = []
    for family, name, levels in families:
        if isinstance(levels, (str, bytes)) or not isinstance(levels, Iterable):
            raise InvalidInputError(f"`{name}` must be a sequence of numbers; got {levels!r}")
        made += [family(level) for level in levels]
    return made


def default_solvers(config: FitConfig) -> dict[str, SolveOptions | None]:
    """The run's trained numerics, RK4 with one step per observation gap and Dopri5 at the run's tolerances."""
    swap = {"solver_options": {}, "controller": None, "step": None}
    return {
        "trained": config.solve_options(),
        "rk4": config.replace(solver="rk4", **swap).solve_options(),
        "dopri5": config.replace(solver="dopri5", **swap).solve_options(),
    }


def _row(
    kind: str, parameter: str | None, level: float, label: str, metric: str, results: list[EpochResult]
) -> dict[str, Any]:
    """A curve row: the metrics of `results` (one per draw) averaged."""

    def mean(name: str) -> float:
        return sum(getattr(result, name) for result in results) / len(results)

    return {
        "perturbation": kind,
        "parameter": parameter,
        "level": level,
        "label": label,
        metric: getattr(results[0], metric) if len(results) == 1 else mean(metric),
        "loss": results[0].loss if len(results) == 1 else mean("loss"),
        "vf_evals": results[0].vf_evals if len(results) == 1 else mean("vf_evals"),
        "repeats": len(results),
    }


def _swap_row(
    model: AbstractSequenceModel, data: IrregularBatch, label: str, options: SolveOptions | None, metric: str
) -> dict[str, Any]:
    numerics = "the model's own numerics" if options is None else options.describe()
    row = {"label": label, "numerics": numerics, metric: None, "loss": None, "vf_evals": None, "error": None}
    try:
        result = evaluate(model, data, options=options)
    except (SolveFailed, IncompatibleTermError, InvalidInputError) as error:
        # The data were checked beforehand: what fails here is this numerics on this model.
        return {**row, "error": f"{type(error).__name__}: {error}"}
    return {**row, metric: getattr(result, metric), "loss": result.loss, "vf_evals": result.vf_evals}


def _metric(data: IrregularBatch) -> str:
    return "accuracy" if data.targets.dtype == torch.long else "mae"


def _check_scoring(model: object, data: object, options: object) -> None:
    if not isinstance(model, AbstractSequenceModel):
        raise InvalidInputError(f"`model` must be an AbstractSequenceModel; got {describe(model)}")
    if not isinstance(data, IrregularBatch):
        raise InvalidInputError(f"`data` must be an IrregularBatch; got {describe(data)}")
    targets = data.targets
    if targets is None or not (targets.dtype == torch.long and targets.ndim == 1 or targets.is_floating_point()):
        got = None if targets is None else f"{targets.dtype} {tuple(targets.shape)}"
        raise InvalidInputError(f"`data.targets` must be class indices [B] (long) or floating targets; got {got}")
    if options is not None and not isinstance(options, SolveOptions):
        raise InvalidInputError(f"`options` must be SolveOptions or None; got {describe(options)}")


def _check_perturbations(perturbations: object) -> list[AbstractPerturbation]:
    if isinstance(perturbations, AbstractPerturbation) or not isinstance(perturbations, Iterable):
        raise InvalidInputError(f"`perturbations` must be a sequence of perturbations; got {perturbations!r}")
    perturbations = list(perturbations)
    for index, item in enumerate(perturbations):
        if not isinstance(item, AbstractPerturbation):
            raise InvalidInputError(f"`perturbations[{index}]` must be a perturbation; got {describe(item)}")
    return perturbations


__all__ = ["default_solvers", "robustness_curve", "run_robustness", "solver_swap", "standard_perturbations"]

"""The run configuration: every name and value checked before training, with the valid choices."""

from __future__ import annotations

import pytest

import neuralct as nct
from neuralct import registry
from neuralct.data.datasets import load
from neuralct.errors import IncompatibleTermError, InvalidInputError
from neuralct.models.base import SolveOptions
from neuralct.train.config import FitConfig
from neuralct.train.numerics import check_numerics


def test_default_config_is_valid_and_uses_the_models_own_numerics() -> None:
    config = FitConfig()
    assert config.solve_options() is None
    assert config.as_dict()["model"] == config.model
    assert FitConfig.from_mapping(config.as_dict()) == config


def test_solver_names_become_solve_options_with_a_fitting_controller() -> None:
    adaptive = FitConfig(solver="tsit5", rtol=1e-4, atol=1e-7).solve_options()
    assert isinstance(adaptive.solver, nct.Tsit5)
    assert adaptive.controller == nct.PIDController(rtol=1e-4, atol=1e-7)
    assert FitConfig(solver="rk4").solve_options().controller == nct.KnotToKnot()
    assert FitConfig(solver="euler", controller="constant", step=0.05).solve_options().controller == nct.ConstantStep(
        0.05
    )
    assert FitConfig(solver="rk4", step=0.05).solve_options().controller == nct.ConstantStep(0.05)  # --step alone


@pytest.mark.parametrize(
    "values, message",
    [
        ({"model": "lct"}, "unknown model 'lct'; did you mean 'ltc'.*Valid choices: .*tau_gru"),
        ({"dataset": "japanese_vowel"}, "unknown dataset 'japanese_vowel'; did you mean 'japanese_vowels'"),
        ({"solver": "dopri6"}, "unknown solver 'dopri6'; did you mean .*'dopri5'"),
        ({"controller": "pi"}, "unknown controller 'pi'; did you mean 'pid'"),
        ({"missing": 1.0}, r"`missing` must be in \[0, 1\)"),
        ({"missing": -0.1}, r"`missing` must be in \[0, 1\)"),
        ({"missing": "0.3"}, "`missing` must be int or float or None; got '0.3'"),
        ({"epochs": 2.5}, "`epochs` must be int; got 2.5"),
        ({"epochs": 0}, "`epochs` must be a positive int"),
        ({"hidden": True}, "`hidden` must be int; got True"),
        ({"lr": -1e-3}, "`lr` must be a positive finite number"),
        ({"controller": "constant"}, "controller 'constant' needs `step`"),
        ({"epoch": 3}, "unknown config key 'epoch'; did you mean 'epochs'"),
        ({"strict": "yes"}, "`strict` must be bool; got 'yes'"),
        (
            {"solver": "method_of_steps", "solver_options": {"solvr": "rk4"}},
            "`solver_options`: unknown option 'solvr' for solver 'method_of_steps'; did you mean 'solver'",
        ),
    ],
)
def test_bad_configs_fail_before_training_naming_the_choices(values, message) -> None:
    with pytest.raises(InvalidInputError, match=message):
        FitConfig.from_mapping(values)


def test_incompatible_numerics_fail_on_a_two_sample_dry_run() -> None:
    data = load("spirals", "train", size=4, length=6)
    noisy = registry.model("noisy_rnn", channels=2, hidden=4, outputs=2, additive=0.1)
    with pytest.raises(IncompatibleTermError):
        check_numerics(noisy, data, FitConfig(model="noisy_rnn", solver="tsit5").solve_options())
    assert noisy.training  # the mode is restored
    gru_d = registry.model("gru_d", channels=2, hidden=4, outputs=2)
    with pytest.raises(InvalidInputError, match="no flow between observations"):
        check_numerics(gru_d, data, SolveOptions(nct.Euler(), nct.KnotToKnot()))
    ltc = registry.model("ltc", channels=2, hidden=4, outputs=2)
    check_numerics(ltc, data, FitConfig(solver="dopri5").solve_options())  # any ODE solver fits the LTC


def test_solver_options_reach_the_solver_and_need_a_solver() -> None:
    options = FitConfig(model="tau_gru", solver="method_of_steps", solver_options={"solver": "rk4"}).solve_options()
    assert options.describe() == "MethodOfSteps(RK4) + KnotToKnot"
    with pytest.raises(InvalidInputError, match="`solver_options` need a `solver`"):
        FitConfig(solver_options={"solver": "rk4"})
    with pytest.raises(InvalidInputError, match="unknown solver 'rk45'; did you mean 'rk4'"):
        FitConfig(solver="method_of_steps", solver_options={"solver": "rk45"})


def test_a_solve_that_fails_on_the_dry_run_is_left_to_training_to_count() -> None:
    from neuralct.errors import SolveFailed

    data = load("spirals", "train", size=4, length=6)
    ltc = registry.model("ltc", channels=2, hidden=4, outputs=2)
    options = SolveOptions(nct.Dopri5(), nct.PIDController(rtol=1e-6, atol=1e-8), max_steps=1)
    with pytest.raises(SolveFailed):
        ltc.run(data.select([0, 1]), options)
    check_numerics(ltc, data, options)  # the solver can integrate the term: not a configuration error

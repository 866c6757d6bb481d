"""The registry: the one place where strings become solvers, controllers and gradients."""

from __future__ import annotations

import pytest

import neuralct as nct
from neuralct import registry
from neuralct.backends import TorchDiffEq, TorchSDE
from neuralct.data.datasets import load
from neuralct.solvers.exact_linear import GBT, ZOH

SOLVERS = {
    "euler": nct.Euler,
    "midpoint": nct.Midpoint,
    "heun": nct.Heun,
    "ralston": nct.Ralston,
    "rk4": nct.RK4,
    "bosh3": nct.Bosh3,
    "dopri5": nct.Dopri5,
    "tsit5": nct.Tsit5,
    "dopri8": nct.Dopri8,
    "implicit_euler": nct.ImplicitEuler,
    "zoh": ZOH,
    "gbt": GBT,
    "euler_maruyama": nct.EulerMaruyama,
    "milstein": nct.Milstein,
    "stochastic_heun": nct.StochasticHeun,
    "reversible_heun": nct.ReversibleHeun,
    "method_of_steps": nct.MethodOfSteps,
}


@pytest.mark.parametrize("name, cls", SOLVERS.items())
def test_every_solver_name_makes_its_class(name, cls):
    assert type(registry.solver(name)) is cls
    assert type(registry.make("solver", name)) is cls


def test_controllers_and_gradients_take_their_options():
    assert registry.controller("pid", rtol=1e-5, atol=1e-7) == nct.PIDController(rtol=1e-5, atol=1e-7)
    assert registry.controller("constant", dt=0.1) == nct.ConstantStep(0.1)
    assert registry.gradient("backprop", checkpoint_every=4) == nct.Backprop(checkpoint_every=4)
    assert isinstance(registry.make("gradient", "backsolve", seminorm=True), nct.Backsolve)


def test_peer_backends_are_named_library_colon_method():
    solver = registry.solver("torchdiffeq:rk4", adjoint=True)
    assert solver == TorchDiffEq("rk4", adjoint=True)
    assert isinstance(registry.solver("torchsde:euler"), TorchSDE)


def test_nested_solver_options_are_looked_up_too():
    assert registry.solver("method_of_steps", solver="dopri5").solver == nct.Dopri5()


def test_names_list_every_entry_with_a_one_line_description():
    solvers = registry.names("solver")
    assert set(SOLVERS) <= set(solvers)
    assert "torchdiffeq:dopri5" in solvers and "torchsde:euler" in solvers
    assert solvers["euler"] == "Euler's method, order 1"
    assert all(text and "\n" not in text for text in solvers.values())
    assert set(registry.names("controller")) == {"constant", "knots", "pid"}
    assert set(registry.kinds()) == {"solver", "controller", "gradient", "model"}
    assert registry.names("model")["tau_gru"].startswith("τ-GRU")


def test_every_listed_name_can_be_made():
    for kind in registry.kinds():
        for name in registry.names(kind):
            options = {"dt": 0.1} if name == "constant" else {}
            if kind == "model":
                options = {"channels": 2, "hidden": 4, "outputs": 3}
            assert registry.make(kind, name, **options) is not None


def test_every_registered_model_classifies_an_irregular_batch():
    batch = load("spirals", "train", size=4, length=8)
    for name in registry.names("model"):
        model = registry.model(name, channels=2, hidden=4, outputs=3)
        assert model(batch).shape == (4, 3), name
    with pytest.raises(TypeError, match="unknown option 'hiden'.*did you mean 'hidden'"):
        registry.model("ltc", channels=2, hiden=4, outputs=3)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: registry.solver("dopri6"), "unknown solver 'dopri6'; did you mean .*'dopri5'.*Valid choices: .*tsit5"),
        (lambda: registry.solver("torchdiffeq:dopri6"), "unknown torchdiffeq method 'dopri6'; did you mean .*'dopri5'"),
        (lambda: registry.solver("scipy:rk45"), "unknown solver family 'scipy'.*torchdiffeq"),
        (lambda: registry.controller("pi"), "unknown controller 'pi'; did you mean 'pid'"),
        (lambda: registry.make("stepper", "pid"), "unknown kind 'stepper'.*controller"),
        (lambda: registry.names("solvers"), "unknown kind 'solvers'; did you mean 'solver'"),
    ],
)
def test_unknown_names_raise_invalid_input_listing_valid_choices(call, message):
    with pytest.raises(nct.InvalidInputError, match=message):
        call()


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda: registry.controller("pid", rtoll=1e-3),
            "unknown option 'rtoll' for controller 'pid'; did you mean 'rtol'",
        ),
        (lambda: registry.solver("dopri5", rtol=1e-3), "unknown option 'rtol' for solver 'dopri5'.*takes no options"),
        (lambda: registry.solver("torchdiffeq:dopri5", method="rk4"), "unknown option 'method'"),
        (lambda: registry.solver("torchdiffeq:dopri5", adjiont=True), "did you mean 'adjoint'"),
        (lambda: registry.controller("constant"), "controller 'constant' needs option\\(s\\) dt"),
    ],
)
def test_bad_options_raise_type_error_naming_the_option(call, message):
    with pytest.raises(TypeError, match=message):
        call()


def test_option_values_are_still_validated_by_the_class():
    with pytest.raises(nct.InvalidInputError, match="rtol"):
        registry.controller("pid", rtol=-1.0)

"""The registry: the one place where strings become solvers, controllers, gradients, models and
datasets; and the lazy packages that let `neuralct list` answer without torch."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

import neuralct as nct
from neuralct import registry
from neuralct._catalog import Entry
from neuralct.backends import TorchDiffEq, TorchSDE
from neuralct.data.datasets import load
from neuralct.solvers.linear import GBT, ZOH

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
    assert set(registry.kinds()) == {"solver", "controller", "gradient", "model", "dataset"}
    assert registry.names("model")["tau_gru"].startswith("tau-GRU")


def test_every_listed_name_can_be_made():
    for kind in ("solver", "controller", "gradient", "model"):
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


def _entries():
    return [(kind, name) for kind in registry.kinds() for name in registry.names(kind) if ":" not in name]


@pytest.mark.parametrize(("kind", "name"), _entries())
def test_every_registered_entry_imports_and_is_described_in_one_plain_whole_line(kind, name):
    target = registry.entry(kind, name).load()
    assert callable(target) and getattr(target, "__module__", "").startswith("neuralct.")
    text = registry.names(kind)[name]
    assert 20 <= len(text) <= 100 and "\n" not in text, text
    assert not re.search(r"[$\\`]|\[[^\]]*\]\(", text), f"LaTeX or markdown in {text!r}"
    # Cut short (the old first-sentence rule gave "The full GRU-D of Che et al", "A `torch").
    assert text.count("(") == text.count(")") and not re.search(r"\b(al|e\.g|i\.e|vs)\.?$", text), text


def test_peer_method_lists_are_those_the_installed_libraries_offer():
    from torchdiffeq._impl.odeint import SOLVERS
    from torchsde.settings import METHODS

    from neuralct._catalog import FAMILIES
    from neuralct.backends.torchdiffeq import available_methods
    from neuralct.backends.torchsde import TorchSDEMethod

    torchdiffeq, torchsde = FAMILIES["solver"]["torchdiffeq"].methods, FAMILIES["solver"]["torchsde"].methods
    assert list(torchdiffeq) == available_methods()
    assert set(torchdiffeq) == set(SOLVERS) - {"scipy_solver"}  # no autograd through SciPy
    offered = {getattr(METHODS, n) for n in dir(METHODS) if not n.startswith("_")}
    assert set(torchsde) == offered - {"adjoint_reversible_heun"} == {m.value for m in TorchSDEMethod}


@pytest.mark.parametrize(
    ("name", "message"),
    [("euler", "solver name 'euler' is already taken"), ("my solver", "must be letters, digits"), ("a:b", "letters")],
)
def test_add_refuses_a_taken_or_malformed_name(name, message, monkeypatch):
    monkeypatch.setitem(registry._ADDED, "solver", {})
    with pytest.raises(nct.InvalidInputError, match=message):
        registry.add("solver", name, Entry("neuralct.solvers:Euler", "Euler again, under another name"))


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("neuralct.solvers.Euler", "Euler"), "'package.module:attribute'"),
        ((3, "three"), "must be callable"),
        (("neuralct.solvers:Euler", "two\nlines"), "one non-empty line"),
        (("neuralct.solvers:Euler", " "), "one non-empty line"),
    ],
)
def test_entry_checks_its_target_and_description(arguments, message):
    with pytest.raises(nct.InvalidInputError, match=message):
        Entry(*arguments)


PACKAGES = ["neuralct", "neuralct.data", "neuralct.data.datasets"]


@pytest.mark.parametrize("package", PACKAGES)
def test_every_public_name_of_a_lazy_package_resolves_to_its_module_attribute(package):
    module = importlib.import_module(package)
    declared = _type_checking_imports(module)
    assert set(declared) == set(module.__all__) and set(module.__all__) <= set(dir(module))
    for name, (source, submodule) in declared.items():
        expected = (
            importlib.import_module(f"{source}.{name}") if submodule else getattr(importlib.import_module(source), name)
        )
        assert getattr(module, name) is expected, f"{package}.{name}"


def _type_checking_imports(module) -> dict[str, tuple[str, bool]]:
    """Public name -> (absolute module, whether the name is a submodule of it), from the imports
    under `if TYPE_CHECKING:`."""
    tree = ast.parse(Path(module.__file__).read_text())
    block = next(node for node in tree.body if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING")
    found = {}
    for node in block.body:
        base = importlib.util.resolve_name("." * node.level + (node.module or ""), module.__name__)
        found |= {alias.name: (base, node.module is None) for alias in node.names}
    return found


def test_importing_the_package_and_listing_every_name_loads_no_torch():
    code = (
        "import sys, neuralct, neuralct.data.datasets as d; from neuralct import registry; "
        "[registry.names(kind) for kind in registry.kinds()]; d.available(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'numpy', 'torchdiffeq')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_a_submodule_import_leaves_the_public_name_of_the_same_spelling():
    # neuralct/solve.py defines nct.solve; importing it (as the models do) must not hide the function.
    code = "import neuralct as nct, neuralct.models, types; print(isinstance(nct.solve, types.FunctionType))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "True"

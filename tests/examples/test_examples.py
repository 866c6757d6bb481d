"""The examples and the code in README.md and docs/ run, and their checks hold."""

from __future__ import annotations

import ast
import importlib.util
import json
from pathlib import Path

import pytest
import torch
from _snippets import python_blocks, run_document, run_source, stated_outputs

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
# ```python blocks are run in order, one namespace per file, and the values they state
# (`expr  # -> value`) are checked (tests/_snippets.py); ```py blocks are illustrations only.
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"neuralct_example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_runs_and_matches_its_references(tmp_path: Path) -> None:
    result = _load("demo").main(["--small", "--out", str(tmp_path)])
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [
        "dense_and_backward.png",
        "lotka_volterra.png",
        "van_der_pol_steps.png",
    ]
    assert result["lv_error"] < 1e-6  # Tsit5 at rtol = atol = 1e-9 against SciPy DOP853 at 1e-12
    assert result["roundtrip"] < 1e-6  # forward then backward returns to y(0)
    assert result["own_steps"] < result["shared_steps"]  # per-sample control: fewer steps at the same tolerance


def test_own_data_fits_a_users_csv_by_the_command_line_and_from_python(tmp_path: Path) -> None:
    result = _load("own_data").main(["--small", "--out", str(tmp_path)])
    header = (tmp_path / "gestures.csv").read_text().splitlines()[0]
    assert header == "id,time,z,gesture,split"
    assert result["classes"] == [str(k) for k in range(1, 11)]  # the file's labels 1..10, in numeric order
    for run in ("cli-run", "python-run"):
        assert (tmp_path / run / "best.pt").is_file() and (tmp_path / run / "data.json").is_file()
    for scores in (result["cli"], result["python"]):
        assert scores["test_failed"] == 0 and 0.0 <= scores["test_accuracy"] <= 1.0


DOCUMENTED = [d for d in DOCUMENTS if python_blocks(d)]


@pytest.mark.parametrize("document", DOCUMENTED, ids=lambda d: str(d.relative_to(ROOT)))
def test_code_in_documentation_runs_and_shows_the_values_it_states(document: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # figures the snippets save land here, not in the checkout
    run_document(document)


@pytest.mark.parametrize("document", DOCUMENTED, ids=lambda d: str(d.relative_to(ROOT)))
def test_every_documentation_block_checks_what_it_computes(document: Path) -> None:
    for index, block in enumerate(python_blocks(document)):
        asserts = any(isinstance(node, ast.Assert) for node in ast.walk(ast.parse(block)))
        assert asserts or stated_outputs(block), f"{document.name}, python block {index + 1}: nothing is checked"


@pytest.mark.parametrize(
    "line, holds",
    [
        ("x  # -> 0.2785", True),  # one unit of the last digit either way
        ("x  # the value -> 0.279", True),
        ("x  # -> 0.2787", False),
        ("x  # -> 2.785e-01", True),
        ("x  # -> 2.8e-01", True),
        ("x  # -> 3.0e-01", False),
        ("[x, 12]  # -> [0.28, 12]", True),
        ("[x, 12]  # -> [0.28, 13]", False),  # whole numbers match exactly
        ("print('solve failed for 1 of 2 samples:\\n  sample 1')  # -> solve failed for 1 of 2 samples:...", True),
        ("print(sorted(['b', 'a', 'c']))  # -> ['a', 'b', ...]", True),
        ("print(sorted(['b', 'a', 'c']))  # -> ['a', 'c', ...]", False),
        ("torch.tensor([[1.5, -2.0]]) * 2  # -> [[3.0, -4.0]]", True),
        ("torch.zeros(8, 2).shape  # -> torch.Size([8, 3])", False),
    ],
)
def test_a_stated_output_is_checked_to_the_digits_it_gives(line: str, holds: bool) -> None:
    namespace = {"torch": torch, "x": 0.27852935634}
    if holds:
        run_source(line, namespace, "snippet")
    else:
        with pytest.raises(AssertionError, match="snippet: states"):
            run_source(line, namespace, "snippet")


@pytest.mark.parametrize("line", ["x", "print(x)", "x + 1  # 1.27"])
def test_a_snippet_that_shows_a_value_without_stating_it_is_refused(line: str) -> None:
    with pytest.raises(AssertionError, match="shows a value without `# -> expected`"):
        run_source(line, {"x": 0.25}, "snippet")


def test_readme_usage_example_solves_every_sample() -> None:
    sol = run_document(ROOT / "README.md")["sol"]
    assert bool(sol.succeeded.all())
    assert tuple(sol.ys.shape) == (2, 50, 2)


def test_interpolations_example_draws_its_figure_through_the_observations(tmp_path: Path) -> None:
    errors = _load("interpolations").main(["--out", str(tmp_path)])
    assert (tmp_path / "interpolations.png").stat().st_size > 10_000
    kinds = ["hermite", "limited_hermite", "linear", "natural", "rectilinear"]
    assert max(errors[kind] for kind in kinds) < 1e-12  # every path passes through every observed value
    # Next to a close pair the plain Hermite cubic overshoots by orders of magnitude, the default not.
    assert errors["overshoot hermite"] > 50
    assert 1.0 <= errors["overshoot limited_hermite"] < 1.1


def test_hope_noise_padded_example_trains_both_models_and_draws_its_figures(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLES))  # it imports the shared training loop
    result = _load("hope_noise_padded").main(["--small", "--out", str(tmp_path)])
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["accuracy_vs_padding.png", "impulse_responses.png"]
    assert min(p.stat().st_size for p in tmp_path.glob("*.png")) > 10_000
    assert sorted(result["accuracy"]) == ["hope", "s4d"]
    for accuracy in result["accuracy"].values():
        assert sorted(accuracy) == [16, 64]
        assert all(0.0 <= value <= 1.0 for value in accuracy.values())
    # about the same parameter count: HOPE's n = 16 Markov parameters against S4D's 4 complex modes (N = 8)
    assert abs(result["parameters"]["hope"] - result["parameters"]["s4d"]) < 0.1 * result["parameters"]["s4d"]


def test_lssl_digits_example_beats_chance_with_hippo_and_draws_its_figure(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLES))  # it imports the shared training loop
    accuracy = _load("lssl_digits").main(["--small", "--out", str(tmp_path)])
    assert (tmp_path / "lssl_digits.png").stat().st_size > 10_000
    assert accuracy["legs"] > 0.3  # ten classes: chance is 0.1
    assert accuracy["legs"] > accuracy["random"]


def test_lssl_timescale_example_keeps_its_accuracy_at_twice_the_rate(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLES))  # it imports lssl_digits and the shared training loop
    accuracy = _load("lssl_timescale").main(["--small", "--out", str(tmp_path)])
    assert (tmp_path / "lssl_timescale.png").stat().st_size > 10_000
    assert accuracy["lssl"]["rate"] > 0.5  # four classes: chance is 0.25
    assert accuracy["lssl"]["double_rate"] > accuracy["lssl"]["rate"] - 0.1


def test_irregular_models_example_trains_every_model_under_each_of_its_solvers(tmp_path: Path) -> None:
    module = _load("irregular_models")
    rows = module.main(["--small", "--out", str(tmp_path)])
    expected = sum(2 if spec.general is not None else 1 for spec in module.MODELS.values())
    assert len(rows) == expected
    assert {row.model for row in rows} == set(module.MODELS)
    assert all(0.0 <= row.accuracy <= 1.0 and row.parameters > 0 for row in rows)
    # models with a solve report its evaluations; the discrete baselines report none
    assert all((row.vf_evals > 0) == (row.solver != "(discrete)") for row in rows)
    assert (tmp_path / "irregular_models.md").read_text().count("\n") == expected + 2


def test_adding_memory_example_trains_the_delay_and_noisy_models(tmp_path: Path) -> None:
    runs = _load("adding_memory").main(["--small", "--out", str(tmp_path)])
    assert [run.model for run in runs] == [
        "tau_gru",
        "tau_gru (RK4 per gap)",
        "noisy_rnn",
        "noisy_rnn (Milstein)",
        "gru_delta",
    ]
    assert all(run.test_mse >= 0 for run in runs)
    assert "MethodOfSteps(RK4)" in runs[1].solver
    assert (tmp_path / "adding_memory.json").exists()


def test_stiffness_example_shows_explicit_solvers_failing_where_the_fused_and_implicit_steps_hold(
    tmp_path: Path,
) -> None:
    module = _load("stiffness_ltc")
    results = module.main(module.SMALL, tmp_path)
    factors = results["factors"]
    assert factors[1000.0]["max_abs_eigenvalue"] > 100 * factors[1.0]["max_abs_eigenvalue"]  # conductances set the rate
    for numbers in factors.values():
        fused = numbers["solvers"]["LTC fused"]
        assert (
            fused["failed"] == fused["blown_up"] == 0
            and fused["vf_evals"] == factors[1.0]["solvers"]["LTC fused"]["vf_evals"]
        )
        assert numbers["solvers"]["implicit Euler (adaptive)"]["failed"] == 0
    dopri5 = [numbers["solvers"]["Dopri5 (adaptive)"]["vf_evals"] for numbers in factors.values()]
    assert dopri5 == sorted(dopri5) and dopri5[-1] > 10 * dopri5[0]
    implicit = [numbers["solvers"]["implicit Euler (adaptive)"]["vf_evals"] for numbers in factors.values()]
    assert implicit[-1] < 3 * implicit[0]
    assert factors[1000.0]["solvers"]["RK4 per gap"]["blown_up"] == module.SMALL.series
    assert factors[1000.0]["largest_stable_step"]["rk4"] < results["median_gap"]  # why: h*lambda leaves the region
    assert results["input_scale"][1000.0] < 2 * results["input_scale"][1.0]  # inputs saturate the synapses
    assert (tmp_path / "regions.png").stat().st_size > 10_000


def test_noise_injection_example_trains_both_twins_and_measures_their_state_jacobians(tmp_path: Path) -> None:
    module = _load("noise_injection")
    results = module.main(module.SMALL, tmp_path)
    assert set(results) == {"noisy", "deterministic"}
    saved = {name: json.loads((tmp_path / name / "config.json").read_text()) for name in results}
    assert saved["noisy"]["model_options"] != saved["deterministic"]["model_options"]
    assert {k: v for k, v in saved["noisy"].items() if k != "model_options"} == {
        k: v for k, v in saved["deterministic"].items() if k != "model_options"
    }
    assert len(results["noisy"]["curves"]) == 1 + len(module.SIGMAS) + len(module.FRACTIONS)
    assert (tmp_path / "noise_injection.png").stat().st_size > 10_000
    # the norms are those of the Jacobian of the final state, checked against autograd for one series
    from neuralct.train import FitConfig
    from neuralct.train.build import build_model
    from neuralct.train.splits import load_splits

    config = FitConfig.from_file(tmp_path / "noisy" / "config.json")
    splits = load_splits(config)
    model = build_model(config, splits.train).eval()
    one = splits.test.select([0])
    norm = module.state_jacobian_norms(model, one)
    times, options = model.save_times(one), model.default_solve_options().solve_kwargs()
    final = lambda h0: module.solve(model.term(one), h0[None], times, **options).ys[0, int(one.lengths[0])]  # noqa: E731
    expected = torch.linalg.matrix_norm(torch.autograd.functional.jacobian(final, model.initial_state(one)[0]), ord=2)
    assert float(norm[0]) == pytest.approx(float(expected), rel=1e-5)

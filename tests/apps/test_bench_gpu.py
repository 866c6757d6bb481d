"""The GPU benchmark's smoke path on CPU: every case runs at tiny sizes, eager (the compiled runs and
the CUDA events need a GPU and minutes of compilation; `benchmarks/gpu_check.sh` runs them there)."""

from __future__ import annotations

import math

import pytest
import torch

from benchmarks import gpu, heterogeneous
from benchmarks.harness import BenchmarkResult, Settings

TINY = gpu.Sizes(
    ode_batch=3, cde_batch=2, vdp_distinct=2, vdp_copies=2, observations=5, exponents=(2, 3), compile=False
)


def test_every_case_runs_on_cpu_against_every_peer_with_errors_against_the_references():
    settings = Settings(repeats=1, budget_s=0.0)
    result = gpu.run(settings, TINY)
    libraries = {
        case: {row.library for row in result.rows if row.case == case} for case in {r.case for r in result.rows}
    }
    assert libraries["ODE solve, batch 3, tol 0.01"] == {"neuralct", "torchdiffeq", "torchode"}
    assert libraries["ODE train step, batch 3, tol 1e-05"] == {"neuralct", "torchdiffeq", "torchode"}
    assert libraries["CDE train step, batch 2, rk4"] == {"neuralct", "torchcde"}
    assert libraries["Van der Pol, batch 4, tol 0.001"] == {"neuralct", "torchdiffeq", "torchode"}
    # Errors against the references: above rounding, and within two orders of the tolerance (global error).
    for case in ("ODE solve, batch 3", "Van der Pol, batch 4"):
        for tol in (1e-2, 1e-3):
            assert 1e-8 < result.row(f"{case}, tol {tol:g}", "neuralct").error < 100 * tol
    assert all(row.wall_s > 0 for row in result.rows)
    descriptions = [target.description for target in result.targets]
    assert any(d.startswith("ODE solve: torchdiffeq / neuralct wall at equal error") for d in descriptions)
    assert any(d.startswith("Van der Pol: torchode / neuralct wall at equal error") for d in descriptions)
    assert not any("compile" in d for d in descriptions)  # eager only: no compiled target without its runs
    assert all(isinstance(t.measured, float) and (t.measured > 0 or math.isnan(t.measured)) for t in result.targets)


def test_copies_of_an_oscillator_share_its_scipy_reference():
    mu, _, ts = heterogeneous.problem(torch.device("cpu"), copies=2, distinct=2)
    torch.testing.assert_close(mu, torch.tensor([1.0, 20.0, 1.0, 20.0], dtype=torch.float64))
    exact = heterogeneous.reference(mu, ts)
    assert exact.shape == (4, heterogeneous.SAVES, 2)
    torch.testing.assert_close(exact[:2], exact[2:], rtol=0, atol=0)
    assert not torch.equal(exact[0], exact[1])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown where no GPU is")
def test_asking_for_cuda_without_a_gpu_names_the_smoke_test(capsys):
    with pytest.raises(SystemExit):
        gpu.main(["--device", "cuda"])
    assert "--device cpu --quick" in capsys.readouterr().err


def test_compiled_neuralct_is_held_to_three_times_torchdiffeq_and_to_every_other_peer_at_equal_error():
    result = BenchmarkResult("gpu", "GPU", "made up")
    curve = [(1e-2, 1.0), (1e-4, 2.0)]
    names = ("neuralct", "torchdiffeq", "torchode", gpu.COMPILED_NEURALCT, gpu.COMPILED_TORCHODE)
    gpu.add_targets(result, "ODE solve", dict.fromkeys(names, curve), {"torchdiffeq": 3.0})
    required = {target.description.split(": ")[1].split(" wall")[0]: target.required for target in result.targets}
    assert required == {
        "torchdiffeq / neuralct": 1.0,
        "torchode / neuralct": 1.0,
        "torchdiffeq / neuralct, compile=True": 3.0,
        "torchode / neuralct, compile=True": 1.0,
        "torchode, torch.compile / neuralct, compile=True": 1.0,
    }
    assert all(target.measured == pytest.approx(1.0) for target in result.targets)

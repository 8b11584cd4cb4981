# make test / make bench work on a fresh clone: they create .venv, install fastnn (Cython build
# included) with its extras, then run. Tests import the installed package, never the source tree.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.fastnn-installed
JOBS := $(shell nproc 2>/dev/null || echo 2)
SOURCES := $(shell find fastnn kernels -name '*.py' -o -name '*.pyx' -o -name '*.pxd' -o -name '*.h') setup.py pyproject.toml

.PHONY: test bench warmup clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "setuptools>=77" wheel "cython>=3.0" "numpy>=1.26" "scipy>=1.11"

# constraints.txt pins torch to the CPU build stored on this project's machines (the extras leave it open).
$(INSTALLED): $(BIN)/python $(SOURCES) constraints.txt
	@echo "== installing fastnn and its extras into $(VENV); the Cython kernels compile on $(JOBS) cores"
	$(BIN)/python -m pip install -q --no-build-isolation -c constraints.txt ".[test,bench,examples,distributed,torch]"
	touch $@

# Numba compiles each kernel on one core: warm the on-disk cache in $(JOBS) processes first.
test: $(INSTALLED)
	cd tests && ../$(BIN)/python -m fastnn.warmup --jobs $(JOBS)
	cd tests && ../$(BIN)/python -m pytest -q -n $(JOBS) -m "not serial"
	cd tests && ../$(BIN)/python -m pytest -q -m serial

# Run from bench/ or tests/, never the repo root, where the source folder would shadow the install.
bench: $(INSTALLED)
	cd bench && ../$(BIN)/python -m fastnn.warmup --jobs $(JOBS)
	cd bench && ../$(BIN)/python run.py

warmup: $(INSTALLED)
	cd bench && ../$(BIN)/python -m fastnn.warmup --jobs $(JOBS)

clean:
	rm -rf $(VENV) build *.egg-info kernels/cython/*.c kernels/cython/*.so

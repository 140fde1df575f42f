# Two commands for a fresh clone:  `make demo`  and  `make test`.
# Each creates the virtual environment (.venv) and installs what it needs first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# GUI tests need a screen; on a headless machine they run on a virtual one (Xvfb)
XVFB := $(shell [ -z "$$DISPLAY" ] && command -v xvfb-run >/dev/null && echo 'xvfb-run -a -s "-screen 0 1600x1000x24"')

.PHONY: demo test bench clean

# the demo installs what the plugin needs (napari, Qt); the tests install theirs on top
$(BIN)/.demo: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e ".[all]"
	touch $@

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e ".[testing]"
	touch $@ $(BIN)/.demo

demo: $(BIN)/.demo
	$(BIN)/nuclei-counter gui --sample

# lint first (ruff, configured in pyproject.toml), then the whole test suite
test: $(BIN)/.installed
	$(BIN)/ruff check .
	$(XVFB) $(BIN)/python -m pytest

bench: $(BIN)/.installed
	$(BIN)/python -m pip install -e ".[bench]"
	$(BIN)/python benchmarks/bench_plate.py --repeats 3

clean:
	rm -rf $(VENV) sample-plate build dist

# The two commands a newcomer needs: `make sweep` (the main job) and `make test`.
# Each creates .venv and installs the project into it on first use.
PY ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
RUNS ?= runs
SAMPLES ?= 24

.PHONY: sweep test bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e ".[test]"
	touch $(STAMP)

sweep: $(STAMP)
	$(VENV)/bin/nextsweep sweep spaces/quickstart.yaml --samples $(SAMPLES) --dir $(RUNS)

test: $(STAMP)  # .ci/system-deps: Debian's postgresql and chromium, installed if missing (as root)
	bash .ci/system-deps
	$(VENV)/bin/pytest -q $(PYTEST_ARGS)

bench: $(STAMP)  # the benchmarks' extra (matplotlib, for their plots); scripts and figures: bench/RESULTS.md
	$(VENV)/bin/pip install -q -e ".[test,bench]"

clean:
	rm -rf $(VENV) $(RUNS)

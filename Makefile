# The two commands a newcomer needs: `make sweep` (the main job) and `make test`.
# Each creates .venv and installs the project into it on first use.
PY ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
RUNS ?= runs

.PHONY: sweep test bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e ".[test]"
	touch $(STAMP)

sweep: $(STAMP)
	$(VENV)/bin/nextsweep data synth --out $(RUNS)/synthetic --overwrite
	$(VENV)/bin/nextsweep data info $(RUNS)/synthetic

test: $(STAMP)
	$(VENV)/bin/pytest -q $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(RUNS)

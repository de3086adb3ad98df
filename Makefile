# The two commands a newcomer needs: `make demo` and `make test`. Each one creates or updates the
# virtual environment first, so a fresh machine with Python 3.11 needs nothing else.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.lxn-installed

.PHONY: demo test bench venv clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

venv: $(STAMP)

# The main job on embedded defaults.
demo: $(STAMP)
	$(PY) jobs/benchmark.py model --out bench-out

test: $(STAMP)
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) bench-out lxn-local mlflow.db mlartifacts

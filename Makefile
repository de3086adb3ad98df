# The two commands a newcomer needs: `make demo` and `make test`. Each one creates or updates the
# virtual environment first, so a fresh machine with Python 3.11 needs nothing else.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.lxn-installed

.PHONY: demo test mutants venv clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

venv: $(STAMP)

# The main job on embedded defaults, end to end on this machine: generate a synthetic logo
# dataset -> prepare it -> train and register (challenger) -> promote (champion) -> scan a
# generated "nightly bucket" with the champion. Local Ray, MLflow in ./mlflow.db, data and
# reports under ./lxn-local. Run it again: finished steps are found and skipped.
demo: $(STAMP)
	$(PY) jobs/train.py
	$(PY) jobs/promote.py || test $$? -eq 3  # 3: the gates kept the current champion
	$(PY) jobs/scan.py

test: $(STAMP)
	$(PY) -m pytest -q

# Plants one-line bugs in each module's core rule, one at a time in a scratch copy, and reports
# which the tests catch (killed) and which they miss (survived). Not part of `make test`.
mutants: $(STAMP)
	$(PY) tests/mutants.py --out bench-out

clean:
	rm -rf $(VENV) bench-out lxn-local mlflow.db mlartifacts

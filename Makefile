# The two commands a newcomer needs: `make demo` and `make test`. Each one creates or updates the
# virtual environment first, so a fresh machine with Python 3.11 needs nothing else.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.lxn-installed
# The cluster image: cluster.yaml and deploy/kuberay/ name exactly this (tests/unit/test_deploy.py).
IMAGE ?= ghcr.io/lxn-project/lxn:0.1.0

.PHONY: demo demo-detector test test-fast lint browser mutants venv clean image lock cluster-token cluster-up

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

# The detector on embedded defaults: generated scenes with boxes -> prepare -> train -> scan.
demo-detector: $(STAMP)
	$(PY) jobs/train.py --model logoxpertnet_det
	$(PY) jobs/scan.py --model models:/logoxpertnet-det@challenger --out lxn-local/brand-scans-detector

# Test files run on two workers (each file's fixtures stay on one): most of the suite's time is
# spent waiting for processes (Ray, servers, jobs) to start, not computing. The slowest tests are
# listed at the end.
test: lint browser
	$(PY) -m pytest -q -n 2 --dist loadfile --durations=15

# The unit tests alone (no S3 endpoint, MLflow server or Ray head): the inner loop.
test-fast: lint
	$(PY) -m pytest -q -n 2 tests/unit

# The nightly page's test opens it in a real headless browser: Debian's chromium and its driver
# (apt, as root or through sudo; browser downloads from the internet are not used).
CHROMIUM ?= /usr/bin/chromium
CHROMEDRIVER ?= /usr/bin/chromedriver
browser:
	@test -x $(CHROMIUM) -a -x $(CHROMEDRIVER) || { \
	  SUDO=$$(test "$$(id -u)" -eq 0 || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	    --no-install-recommends chromium chromium-driver; }

lint: $(STAMP)
	$(VENV)/bin/ruff check lxn jobs tests deploy

# Plants one-line bugs in each module's core rule, one at a time in a scratch copy, and reports
# which the tests catch (killed) and which they miss (survived). Not part of `make test`.
mutants: $(STAMP)
	$(PY) tests/mutants.py --out bench-out

# The cluster image (deploy/Dockerfile), its pinned stack, and the cluster's shared secrets.
image:
	docker build -f deploy/Dockerfile -t $(IMAGE) .

lock: $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[dev,server]"
	$(PY) deploy/lock.py

# One Ray auth token for every node and client (mode 0600, git-ignored). The MLflow server's
# backend store URI is an SSM SecureString only the head reads (docs/operations.md).
cluster-token:
	@mkdir -p deploy/secrets && umask 077 && test -s deploy/secrets/ray-auth-token || \
	  $(PYTHON) -c "import secrets; print(secrets.token_hex(32), end='')" > deploy/secrets/ray-auth-token
	@echo "token: deploy/secrets/ray-auth-token (clients: RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH=deploy/secrets/ray-auth-token)"

cluster-up: cluster-token $(STAMP)
	@aws ssm describe-parameters --region us-east-1 --parameter-filters Key=Name,Values=/lxn/mlflow-backend-uri \
	  --query 'Parameters[0].Name' --output text 2>/dev/null | grep -q /lxn/mlflow-backend-uri || \
	  (echo "store the MLflow backend store URI first: aws ssm put-parameter --name /lxn/mlflow-backend-uri --type SecureString --value 'postgresql://...'" && false)
	$(VENV)/bin/ray up -y cluster.yaml

clean:
	rm -rf $(VENV) bench-out lxn-local mlflow.db mlartifacts

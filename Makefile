# make demo: run the example app on the embedded SQLite queue.
# make test: lint, type-check, build the docs strictly, check the SAM example and test,
#            starting the services the tests need.
# make docs: the documentation site (MkDocs + Material + mkdocstrings) into site/, --strict.
# make test-all: make test, then the whole suite on each of $(OTHER_PYTHONS) (.venv-X.Y each).
# Both bootstrap .venv from nothing (Python 3.11, make and git; make test also runs the tests
# on Python 3.12 and 3.13, from PATH or pyenv: OTHER_PYTHONS= leaves them out).

PYTHON ?= python3.11
OTHER_PYTHONS ?= 3.12 3.13
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test test-setup test-all lint typecheck typing docs pytest bench clean redis-server other-venvs

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "make: $(PYTHON) not found; set PYTHON=python3.11 or newer" >&2; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade 'pip>=25.1'
	$(BIN)/python -m pip install --quiet -e . --group dev
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py

lint: $(STAMP)
	$(BIN)/ruff check src tests examples bench
	$(BIN)/ruff format --check src tests examples bench

typecheck: $(STAMP)
	$(BIN)/mypy

# NO_MKDOCS_2_WARNING: Material prints a notice about its end of life (May 2027) on every build.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict  # not --quiet: it hides the warnings --strict fails on

# The typing usage file, checked against the built wheel in a venv of its own.
typing: $(STAMP)
	bash scripts/check-typing.sh

# The Redis tests and benchmarks run a real redis-server (started and stopped
# by scripts/with-services.sh); a machine without one gets Debian's package.
redis-server:
	@command -v redis-server >/dev/null 2>&1 || { \
	  echo "make: installing Debian's redis-server (the Redis tests run a real one)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get install -y -q redis-server >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q redis-server >/dev/null; }; }
	@redis-server --version

pytest: $(STAMP) redis-server
	bash scripts/with-services.sh $(BIN)/pytest -q

# The checks and installs before the tests, side by side (-j4); then cfn-lint, and the
# suite on 3.11 beside the lighter runs on the other Pythons (scripts/other-pythons.sh).
test-setup: lint typecheck typing docs redis-server sam-cli other-venvs

test:
	@$(MAKE) --no-print-directory -j4 test-setup
	$(BIN)/cfn-lint examples/sam/template.yaml
	bash scripts/other-pythons.sh "$(OTHER_PYTHONS)" bash scripts/with-services.sh $(BIN)/pytest -q

# The venvs of the other Pythons (.venv-3.12, ...), made before the tests start.
other-venvs:
	@for v in $(OTHER_PYTHONS); do TEST_PYTHON_INSTALL_ONLY=1 bash scripts/test-python.sh $$v || exit 1; done

# The whole suite on the other Pythons, one after the other; scripts/test-python.sh finds each.
# (make test already ran them lighter: scripts/other-pythons.sh.)
test-all: test
	@for v in $(OTHER_PYTHONS); do bash scripts/test-python.sh $$v || exit 1; done

bench: $(STAMP) redis-server
	$(BIN)/python -m pip install --quiet --group bench
	bash scripts/with-services.sh $(BIN)/python bench/run.py
	$(BIN)/python bench/bench_local.py
	bash scripts/with-services.sh $(BIN)/python bench/bench_redis.py
	bash scripts/with-services.sh $(BIN)/python bench/reliability.py --seed 2026

clean:
	rm -rf $(VENV) .venv-typing .venv-3.* .venv-sam examples/sam/.aws-sam site dist .mypy_cache .ruff_cache .pytest_cache .hypothesis

# The AWS SAM CLI, in a venv of its own (it pins many packages; never in .venv):
# make sam-build uses it, and tests/test_sam_template.py (the SAM transform, and
# the build into a temporary directory). `rm -rf .venv-sam` to reinstall.
SAM_VENV  := .venv-sam
SAM_STAMP := $(SAM_VENV)/.installed-stamp
SAM_CLI   ?= aws-sam-cli>=1.130,<2

.PHONY: sam-cli sam-build

$(SAM_STAMP):
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "make: $(PYTHON) not found; set PYTHON=python3.11 or newer" >&2; exit 2; }
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --upgrade 'pip>=25.1'
	$(SAM_VENV)/bin/python -m pip install --quiet '$(SAM_CLI)'
	@touch $(SAM_STAMP)

sam-cli: $(SAM_STAMP)

# examples/sam built with this checkout's glasswork, into examples/sam/.aws-sam/build
# (then `sam deploy --guided` in examples/sam). SAM=/path/to/sam uses another SAM CLI.
sam-build: $(STAMP) $(if $(SAM),,$(SAM_STAMP))
	SAM="$(SAM)" bash scripts/sam-build.sh

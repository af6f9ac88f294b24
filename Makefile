# make demo: run the example app on the embedded SQLite queue.
# make test: lint, type-check and test, starting the services the tests need.
# make test-all: make test, then the tests on each of $(OTHER_PYTHONS) (.venv-X.Y each; not in CI).
# Both bootstrap .venv from nothing (Python 3.11, make and git are all they need).

PYTHON ?= python3.11
OTHER_PYTHONS ?= 3.12 3.13
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test test-all lint typecheck typing pytest bench clean redis-server

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

test: lint typecheck typing redis-server
	@if [ -f examples/sam/template.yaml ]; then $(BIN)/cfn-lint examples/sam/template.yaml; fi
	bash scripts/with-services.sh $(BIN)/pytest -q

# The suite on the other Pythons, one after the other; scripts/test-python.sh finds each.
test-all: test
	@for v in $(OTHER_PYTHONS); do bash scripts/test-python.sh $$v || exit 1; done

bench: $(STAMP) redis-server
	$(BIN)/python -m pip install --quiet --group bench
	bash scripts/with-services.sh $(BIN)/python bench/run.py
	$(BIN)/python bench/bench_local.py
	bash scripts/with-services.sh $(BIN)/python bench/bench_redis.py
	bash scripts/with-services.sh $(BIN)/python bench/reliability.py --seed 2026

clean:
	rm -rf $(VENV) .venv-typing .venv-3.* dist .mypy_cache .ruff_cache .pytest_cache .hypothesis

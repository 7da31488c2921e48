# Two commands on a fresh machine with Python 3.11 (see README):
#   make run    set up .venv, then run the whole pipeline on embedded defaults
#   make test   set up .venv, then run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.recframe-installed
PYTEST_ARGS ?= -m "not slow"

.PHONY: setup run test test-all test-slow lint docs clean

# torch first: its CPU build comes from local disk; a bare requirement would pull GBs of CUDA.
# reclist is installed without its dependencies: its declared pins (numpy<2, pyarrow 12, ...) break
# the modern stack, and recframe only uses the parts of it that import cleanly (docs/testing.md).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[all]"
	$(BIN)/python -m pip install -q --no-deps reclist==2.1.0
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/python -m recframe $(ARGS)

# pytest exits 5 when it collected no test (a -k or -m that matches nothing): reported, not a failure.
test: $(STAMP)
	@rc=0; $(BIN)/python -m pytest $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest: no test matched the selection"; rc=0; fi; exit $$rc

# every test, the slow ones too (what CI runs, under pytest-timeout's limits)
test-all: $(STAMP)
	$(MAKE) test PYTEST_ARGS="-m 'slow or not slow'"

test-slow: $(STAMP)
	$(MAKE) test PYTEST_ARGS="-m slow"

lint: $(STAMP)
	$(BIN)/ruff check recframe tests benchmarks examples
	$(BIN)/ruff format --check recframe tests benchmarks examples

docs: $(STAMP)
	$(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) outputs .recframe site

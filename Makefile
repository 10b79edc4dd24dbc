# One entry point for set-up, run, test and bench. Each target installs what it needs.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint bench clean sysdeps

sysdeps:
	@command -v qemu-img >/dev/null 2>&1 || { \
	  echo "installing qemu-utils (qemu-img)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-utils >/dev/null; }

$(STAMP): pyproject.toml
	$(MAKE) sysdeps
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/chute up --data-dir ./var

lint: install
	$(BIN)/ruff check src tests
	$(BIN)/mypy src/chute

test: install lint
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

bench: install
	$(BIN)/python -m bench $(if $(SCENARIO),--scenario $(SCENARIO),)

clean:
	rm -rf $(VENV) var .pytest_cache

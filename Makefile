# One entry point for set-up, run, test and bench. Each target installs what it needs.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OPT2 := $(VENV)/.bytecode-opt2

.PHONY: install run test lint bench clean sysdeps

# qemu-utils: qemu-img/qemu-io for images; xfsprogs: mkfs.xfs for the reflink (clone) tests;
# tools/libvirt-setup: libvirt + qemu for the libvirt driver (installed, configured, started).
# haproxy: the front end each service starts (chute.front_end).
# iproute2, iputils-ping: the guest-network test's bridge, namespace and ping.
# python3-dev: Python.h, to build uWSGI for the Keystone venv (chute up --keystone, tests/auth).
# postgresql: initdb/pg_ctl for the private clusters of tests/helpers/postgres.py (no service is
# started: the package's own cluster is left alone) and the `postgres` user they run as.
# openssl: the self-signed certificate of a cluster with TLS on (tests/compute/test_db.py).
sysdeps:
	@missing=""; \
	command -v qemu-img >/dev/null 2>&1 || missing="$$missing qemu-utils"; \
	command -v mkfs.xfs >/dev/null 2>&1 || missing="$$missing xfsprogs"; \
	command -v haproxy >/dev/null 2>&1 || missing="$$missing haproxy"; \
	command -v ip >/dev/null 2>&1 || missing="$$missing iproute2"; \
	command -v ping >/dev/null 2>&1 || missing="$$missing iputils-ping"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v openssl >/dev/null 2>&1 || missing="$$missing openssl"; \
	$(PY) -c 'import os, sysconfig, sys; sys.exit(not os.path.exists(sysconfig.get_paths()["include"] + "/Python.h"))' || missing="$$missing python3-dev"; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	tools/libvirt-setup

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,libvirt,postgresql]'
	touch $(STAMP)

# chute-api runs under -OO (chute.images.main): pip writes only the plain bytecode, and without
# the -OO one (.opt-2.pyc) every process would compile its libraries again at each start, in
# CPU and in memory (under PYTHONDONTWRITEBYTECODE, as in some shells, it would never be kept).
# A library's own file that does not compile (a test of theirs) is no reason to stop.
$(OPT2): $(STAMP)
	$(BIN)/python -OO -m compileall -q -j 0 $(VENV)/lib src >/dev/null || true
	touch $(OPT2)

install: sysdeps $(STAMP) $(OPT2)

run: install
	$(BIN)/chute up --data-dir ./var $(ARGS)

lint: install
	$(BIN)/ruff check src tests
	$(BIN)/mypy src/chute

# The second pass runs again on PostgreSQL (a private cluster the session starts,
# tests/helpers/postgres.py) what the database backend can change: in the image suite,
# chute-compute-api's (tests/compute/cluster) and the compute API's database-heavy files, only
# the tests whose servers take their database from the `database_url` fixture (any other would
# run on SQLite again) and that are not marked `backend_independent` (body framing, format
# refusals, downloads, version documents, client compatibility: see each file's mark). The rule
# is tests/conftest.py's pytest_collection_modifyitems, so a new test started through the
# fixtures is in. test_image_main is about chute-api's process and its SQLite file.
# Only when no PYTEST_ARGS narrow the run.
PG_SUITES := tests/images --ignore=tests/images/test_image_main.py tests/compute/cluster \
	tests/compute/test_api.py tests/compute/test_keypairs.py tests/compute/test_quotas.py \
	tests/compute/test_flavor_manage.py

test: install lint
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)
	$(if $(PYTEST_ARGS),,$(BIN)/python -m pytest -q --db-backend=postgresql $(PG_SUITES))

bench: install
	$(BIN)/python -m bench $(if $(SCENARIO),--scenario $(SCENARIO),)

clean:
	rm -rf $(VENV) var .pytest_cache

# Every target is one line over the venv, pytest or scripts/.
# Debian's own python3 where there is one (the README's premise), not
# whichever python3 comes first on the PATH: Debian builds it with PGO and
# LTO and links libpython in, and it ran the unit tests with up to 15 % less
# CPU than a default source build (shared libpython, no PGO) on this machine.
PYTHON ?= $(or $(wildcard /usr/bin/python3),python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv run test test-unit test-integration bench bench-quick clean

venv: $(STAMP)

# setup.py compiles the modules its COMPILED lists in place: a change to
# one builds them again.
COMPILED_SOURCES := $(shell sed -n 's|^\(mailsys/[a-z_/]*\.py\)$$|\1|p' setup.py)

$(STAMP): setup.cfg pyproject.toml setup.py $(COMPILED_SOURCES)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

run: venv
	$(BIN)/mailsys -c etc start-fg

# The tests choose their own ports and directories, so pytest-xdist runs
# them on every CPU; worksteal lets an idle worker take over another's
# remaining tests, as the integration tests' lengths differ a lot.
PYTEST := $(BIN)/pytest -q -n auto --dist worksteal

test: venv
	$(PYTEST)

test-unit: venv
	$(PYTEST) -m "not integration"

test-integration: venv
	$(PYTEST) -m integration

# Both need root: a private Postfix runs beside mailsys (scripts/bench/README.md).
bench: venv
	$(BIN)/python scripts/bench/run.py

bench-quick: venv
	$(BIN)/python scripts/bench/run.py --quick

clean:
	rm -rf $(VENV) var build *.egg-info .pytest_cache .hypothesis .mypy_cache
	find mailsys -name '*.so' -delete

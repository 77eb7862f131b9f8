# Two commands matter: `make demo` (the main job) and `make test` (every test).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: help venv broker test-tools demo test test-python lint clean packages molecule bench collection
# molecule and ansible-lint call ansible-playbook and friends by name.
TOOLS_PATH := PATH=$(CURDIR)/$(VENV)/bin:$$PATH

help:
	@echo "make demo   - install what is missing, start RabbitMQ, run an endpoint end to end"
	@echo "make test   - run every test: lint (ruff, mypy, ansible-lint), pytest, molecule"
	@echo "make bench  - ours beside Parsl HTEX, plain and CurveZMQ, floors, scaling (about 15 minutes)"

venv: $(VENV)/.installed

$(VENV)/.installed: endpoint_pkg/pyproject.toml requirements-dev.txt scripts/ensure-venv.sh
	VENV=$(VENV) scripts/ensure-venv.sh
	touch $@

broker:
	scripts/ensure-rabbitmq.sh

# Every system package the tests use (debootstrap, systemd-nspawn, rpm, lintian, ...).
test-tools:
	scripts/ensure-test-tools.sh

demo: venv broker
	scripts/demo.sh

lint: venv
	$(VENV)/bin/ruff check endpoint_pkg tests examples bench molecule scripts
	$(PY) scripts/role_docs.py --check
	$(VENV)/bin/mypy --config-file endpoint_pkg/pyproject.toml endpoint_pkg/compute_endpoint
	$(TOOLS_PATH) $(VENV)/bin/ansible-lint roles playbooks molecule

test-python: test-tools venv broker
	$(PY) -m pytest tests

# The Ansible collection compute.endpoint, built into build/ and installed into
# build/collections (offline), where the molecule scenarios take the roles from.
collection: venv
	VENV=$(VENV) scripts/build-collection.sh

# The molecule scenarios boot systemd containers (root). The four take about 25 minutes one after
# another; scripts/molecule-lanes.sh runs them in two lanes at once.
molecule: test-tools venv collection
	scripts/molecule-artifacts.sh
	$(TOOLS_PATH) scripts/molecule-lanes.sh

test: test-tools lint test-python molecule

clean:
	rm -rf $(VENV) .venv-bench build dist .pytest_cache .hypothesis .ruff_cache .mypy_cache

# Parsl and matplotlib live in their own venv, away from the tested environment.
.venv-bench/.installed: bench/requirements.txt endpoint_pkg/pyproject.toml
	python3 -m venv .venv-bench
	.venv-bench/bin/pip install -q -e ./endpoint_pkg -r bench/requirements.txt
	touch $@

bench: .venv-bench/.installed broker
	PATH=$(CURDIR)/.venv-bench/bin:$$PATH .venv-bench/bin/python bench/run.py

packages: test-tools venv
	packaging/build.sh
	lintian --fail-on error,warning dist/compute-endpoint_*+deb12_amd64.deb
	packaging/build-root.sh trixie lintian --fail-on error,warning dist/compute-endpoint_*+deb13_amd64.deb
	rpmlint -c packaging/rpmlint.toml dist/compute-endpoint-*.rpm

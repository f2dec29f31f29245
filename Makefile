# djchat-stack: every entry point an operator or CI needs.
#   make deploy   bring the stack up on this machine (inventory/local, http://127.0.0.1:8080)
#   make test     lint + app tests + role tests + every Molecule scenario (what CI runs)
#   make bench    benchmarks (bench/)
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON      ?= python3.11
VENV        ?= .venv
BIN         := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
# Molecule runs ansible-config from PATH; the collections bundled with the `ansible` package
# are the only ones used here (Galaxy is not required).
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
# ansible-lint and Molecule put their cache's collections ($$ANSIBLE_HOME/collections) before
# ansible.cfg's collections_path; kept in the checkout, a djchat.stack installed into ~/.ansible
# (an older tarball, another checkout) cannot shadow the one this checkout links to itself.
export ANSIBLE_HOME := $(CURDIR)/.ansible
# The scenarios `make test` (and CI) runs: `SCENARIOS=default make test-molecule` for one.
SCENARIOS   ?= default tuned resilience dev acme cluster

.PHONY: help venv system-deps engine base-images deploy teardown status logs backup lint scan test test-app test-role test-molecule test-resilience test-cluster bench bench-cluster lock lock-dev clean

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements-dev.txt app/requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements-dev.txt -r app/requirements.lock
	touch $@

venv: $(VENV)/.installed  ## Controller virtualenv (Ansible, Molecule, linters, test tools)

system-deps:  ## Debian packages the tests need (redis-server, chromium, debootstrap, wrk, python3-apt)
	bash scripts/system-deps.sh

engine: venv  ## Docker engine with Compose v2 + buildx, started and answering (playbooks/engine.yml)
	bash scripts/docker-engine.sh

base-images: venv system-deps engine  ## Local python/nginx/redis base images (no registry needed)
	$(BIN)/ansible-playbook playbooks/base_images.yml

deploy: base-images  ## Bring the stack up on this machine (nginx on http://127.0.0.1:8080)
	$(BIN)/ansible-playbook playbooks/site.yml

teardown: venv  ## Stop the stack (data volumes kept)
	$(BIN)/ansible-playbook playbooks/teardown.yml

status: venv  ## Table of services: health, restarts, CPU, memory, images
	$(BIN)/ansible-playbook playbooks/status.yml

logs: venv  ## Follow the local stack's logs (SERVICE=asgi for one); playbooks/logs.yml shows the last lines
	docker compose --project-name djchat logs --follow --timestamps $(SERVICE)

backup: venv  ## Back up the local stack's database and Redis (playbooks/backup.yml; /var/backups/djchat)
	$(BIN)/ansible-playbook playbooks/backup.yml

lint: venv  ## yamllint, ansible-lint (production profile), ruff, hadolint (app/Dockerfile)
	$(BIN)/python scripts/app-bounds.py --check
	$(BIN)/python scripts/variables-table.py --check
	$(BIN)/yamllint --strict .
	$(BIN)/ansible-lint --offline --profile production
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/hadolint --failure-threshold warning app/Dockerfile

SCAN_VENV := .cache/scan-venv
$(SCAN_VENV)/.installed: requirements-scan.txt
	test -x $(SCAN_VENV)/bin/python || $(PYTHON) -m venv $(SCAN_VENV)
	$(SCAN_VENV)/bin/python -m pip install -q -r requirements-scan.txt
	touch $@

scan: venv $(SCAN_VENV)/.installed  ## bandit, pip-audit, checkov, hadolint, check --deploy (scripts/scan.sh)
	SCAN_CHECKOV=$(SCAN_VENV)/bin/checkov bash scripts/scan.sh

test-app: venv system-deps  ## The app's own tests (real redis-server, headless Chromium)
	cd app && $(BIN)/python -m pytest

test-role: base-images  ## The role's validation, templates and engine install (on a Debian 12 container)
	cd tests/role && $(BIN)/python -m pytest

test-molecule: base-images  ## Every Molecule scenario, converge to destroy
	set -e; for s in $(SCENARIOS); do \
	  echo "=== molecule test -s $$s ==="; \
	  $(BIN)/molecule test -s $$s; \
	done

test-resilience: base-images  ## The resilience scenario (faults, hostile input, redeploy under load)
	$(BIN)/molecule test -s resilience

test-cluster: base-images  ## The cluster scenario: three Docker-in-Docker nodes on Swarm (about 25 min)
	$(BIN)/molecule test -s cluster

test: lint test-app test-role test-molecule  ## Everything CI runs

bench: base-images  ## Benchmarks: seed vs defaults vs max profiles (bench/results/)
	$(BIN)/python bench/run.py

bench-cluster: base-images  ## Fan-out through the cluster scenario's three nodes against one host (bench/results/cluster/)
	$(BIN)/python bench/cluster.py

# Both locks carry the sha256 of every file of each pinned release (--generate-hashes): pip then
# installs nothing whose hash is not in the lock. Existing pins are kept (no --upgrade): to move a
# package, edit its pin or run pip-compile with --upgrade-package NAME. pip and setuptools stay
# unpinned in requirements-dev.txt (its WARNING): the venv's own satisfy them.
lock:  ## Re-resolve app/requirements.lock from app/pyproject.toml's dependencies (as its header says), with hashes
	cd app && $(BIN)/pip-compile -q --generate-hashes --strip-extras --no-emit-index-url --no-emit-find-links --output-file requirements.lock pyproject.toml

lock-dev:  ## Re-resolve requirements-dev.txt from requirements-dev.in, with hashes
	CUSTOM_COMPILE_COMMAND="make lock-dev" $(BIN)/pip-compile -q --generate-hashes --strip-extras --no-emit-index-url --no-emit-find-links --output-file requirements-dev.txt requirements-dev.in

clean:  ## Remove the virtualenv and caches (not the stack)
	rm -rf $(VENV) .pytest_cache .ruff_cache

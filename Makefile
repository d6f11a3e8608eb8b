# The project's front door. `make test` is what CI runs (.ci/run).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV := $(CURDIR)/.venv
export PATH := $(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export ANSIBLE_FORCE_COLOR := false
PYTEST := $(VENV)/bin/pytest
# Molecule: the repository's podman settings, a bare Debian 12 base image built
# here when no registry is reachable (set MOLECULE_BASE_IMAGE to pull one
# instead), and the image the scenarios run: the base with prepare's Debian
# packages already in (set MOLECULE_IMAGE to any Debian 12 image; prepare then
# installs them).
export CONTAINERS_CONF := $(CURDIR)/molecule/resources/containers.conf
MOLECULE_BASE_IMAGE ?= localhost/prisma-molecule-base:bookworm
MOLECULE_IMAGE ?= $(if $(filter localhost/%,$(MOLECULE_BASE_IMAGE)),localhost/prisma-molecule-staging:bookworm,$(MOLECULE_BASE_IMAGE))
export MOLECULE_BASE_IMAGE MOLECULE_IMAGE

.PHONY: help setup lint test unit integration molecule molecule-image demo bench bench-quick bench-fleet bench-parser bench-snapshot bench-ddl bench-load fresh-check

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

setup: ## Install everything the project needs (idempotent; root installs system packages)
	@scripts/setup.sh

lint: setup ## ansible-lint (production profile), yamllint, ruff, workflow schema, syntax-check every playbook
	ansible-lint --profile production
	yamllint --strict .
	ruff check .
	ruff format --check .
	check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	$(VENV)/bin/python scripts/role_docs.py --check
	@for pb in playbooks/*.yml; do \
	  echo "syntax-check $$pb"; \
	  ansible-playbook --syntax-check "$$pb" >/dev/null; \
	done

unit: setup ## Unit tests (no database)
	$(PYTEST) tests/unit

# The integration tests run Prisma on Node.js 24 LTS (installed by setup) with its compile cache; molecule's
# staging container runs the machine's Node 20.
integration: export PATH := $(CURDIR)/tests/fixtures/node24/node_modules/.bin:$(PATH)
integration: export NODE_COMPILE_CACHE := $(CURDIR)/.cache/node-compile-cache
integration: setup ## Integration tests against throwaway PostgreSQL clusters: every test on Prisma 7.10.1, the marked ones on 6.19.3 too
	node -e 'process.exit(process.versions.node.startsWith("24.") ? 0 : 1)' || { echo "integration: node is $$(node --version), not the Node 24 of tests/fixtures/node24: run 'make setup'" >&2; exit 1; }
	$(PYTEST) -n 2 --dist worksteal --durations=25 tests/integration

molecule-image: setup ## Install podman, build the local Debian 12 base image and the staging image for molecule (cached)
	@scripts/setup.sh --molecule
	@case "$(MOLECULE_BASE_IMAGE)" in \
	  localhost/*) scripts/molecule_image.sh "$(MOLECULE_BASE_IMAGE)" $(filter localhost/%,$(MOLECULE_IMAGE)) ;; \
	  *) echo "molecule-image: using $(MOLECULE_BASE_IMAGE) (pulled by podman)" ;; \
	esac

molecule: setup molecule-image ## Molecule scenarios (default, failure) on staging-like containers; SCENARIO=name for one
	molecule test $(if $(SCENARIO),--scenario-name $(SCENARIO),--all)

test: setup ## Everything CI runs: lint and unit side by side, then integration and molecule side by side
	$(MAKE) --no-print-directory -j2 --output-sync=target lint unit
	$(MAKE) --no-print-directory -j2 --output-sync=target integration molecule

bench: setup ## Benchmark: migrate.yml vs the bare commands on ~1 GB (3 pairs); last line 'ratio B/A = X.XX'
	$(VENV)/bin/python bench/migrate_overhead.py

bench-quick: setup ## The same benchmark on ~100 MB, 5 pairs (its pairs vary more; a few minutes)
	$(VENV)/bin/python bench/migrate_overhead.py --quick --pairs 5

bench-fleet: setup ## Benchmark: 8 tenant databases, one at a time vs the canary then batches of 4
	$(VENV)/bin/python bench/fleet_rollout.py

bench-parser: setup ## Benchmarks: the status parser on 3,000 pending names (goal < 50 ms); sql_plan on 20,000 statements (goal < 2 s)
	$(VENV)/bin/python bench/parse_status.py
	$(VENV)/bin/python bench/parse_sql.py

bench-snapshot: setup ## Benchmark: the read, write and CPU limits of a snapshot, the auto-chosen dump's rate and its ratio to them, on 1 GB and 4 GB; then a restore point next to pg_dump on 1 GB
	$(VENV)/bin/python bench/snapshot_rates.py 1024 4096
	$(VENV)/bin/python bench/restore_point.py 1024

bench-ddl: setup ## Calibrate the gate's estimates: index build, rewrite, validating scan on 3 sizes; writes plugins/action/ddl_rates.json, prints the error
	$(VENV)/bin/python bench/ddl_rates.py

bench-load: setup ## What the application sees: 16 clients of inserts, updates and reads beside the bare commands and migrate.yml, with and without a blocker (~1 GB)
	$(VENV)/bin/python bench/load.py

demo: setup ## Migrate a throwaway local database end to end with playbooks/migrate.yml
	$(VENV)/bin/python scripts/demo.py

fresh-check: ## Prove `make demo` and `make unit` in a clean Debian 12 container from a clone of main (root; not in make test)
	@scripts/fresh_check.sh

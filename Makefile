# The two commands of the README (`make up`, `make test`) and the checks CI runs (`make check`).
# Every target bootstraps .venv/ first, so each works on a fresh clone.
.PHONY: up test check lint types imports venv clean peers

VENV := .venv/bin
PYTEST_ARGS ?=

venv:
	@scripts/bootstrap

up: venv
	$(VENV)/cairn up --nodes 3 --data-dir ./cairn-local

test: venv
	$(VENV)/pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

lint: venv
	$(VENV)/ruff check src tests
	$(VENV)/ruff format --check src tests

types: venv
	$(VENV)/mypy

imports: venv
	$(VENV)/lint-imports

check: lint types imports test

# Peer systems the benchmarks compare with (../shared/PEERS.md); needs root. The benchmarks
# start them themselves on loopback and run alone, saying so, when they are absent.
peers:
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server restic

clean:
	rm -rf .venv cairn-local .mypy_cache .pytest_cache .ruff_cache

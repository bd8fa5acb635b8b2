# tenfold developer targets. `make help` lists them.
SHELL := /bin/bash
VENV = $(shell bash hack/python-env.sh 2>/dev/null | tail -1)
PY = $(VENV)/bin/python

.PHONY: help demo test unit lint crds chart manifests bench report testbed-up testbed-down env

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

demo: ## set everything up and serve the MiniLM example on the local cluster through real Triton
	bash hack/demo.sh

test: ## set everything up and run the whole test suite (what .ci/run runs)
	bash hack/test.sh

unit: ## run only the unit tests (seconds, no cluster)
	bash hack/python-env.sh >/dev/null && $(PY) -m pytest tests/unit -q

lint: ## ruff (lint + format check), mypy, and the import layering of docs/architecture.md
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/mypy
	$(PY) -m pytest -q tests/unit/test_architecture.py

crds: ## regenerate crds/ and docs/api.md from the pydantic API models
	$(VENV)/bin/tenfold crd > crds/serving.tenfold.dev_inferenceservices.yaml
	$(VENV)/bin/tenfold crd --kind InferenceTuning > crds/serving.tenfold.dev_inferencetunings.yaml
	$(VENV)/bin/tenfold crd --reference > docs/api.md
	bash hack/manifests.sh

chart: ## lint the Helm chart and regenerate manifests/ from it
	bash hack/manifests.sh

bench: ## benchmark the runtime on real Triton (writes results/bench and prints the command)
	$(VENV)/bin/tenfold-runtime bench

report: ## naive vs tenfold on one workload on the real node, priced end to end (docs/report.md; after `make demo`'s setup)
	bash hack/python-env.sh >/dev/null && $(PY) -m tenfold_tools.report

testbed-up: ## start the local Kubernetes test bed (builds it on first use)
	$(PY) -m tenfold_tools.testbed up

testbed-down: ## stop the local Kubernetes test bed
	$(PY) -m tenfold_tools.testbed down

env: ## create or update the Python environment (outside the repo, cached)
	bash hack/python-env.sh

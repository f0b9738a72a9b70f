# vitalwatch: the two commands a newcomer needs (README.md).
#   make run    set everything up, start the local servers and run the main job on local defaults
#   make test   set everything up and run the whole test suite (what .ci/run calls)
#   make test-fast  only the pure tests (no Spark, no servers): a quick check while editing
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup system-deps browser-deps run train test test-fast lint clean down

system-deps:  ## Java 17, Maven and setpriv from Debian when missing (needs root)
	@missing=""; command -v java >/dev/null || missing="$$missing openjdk-17-jdk-headless"; \
	command -v javac >/dev/null || missing="$$missing openjdk-17-jdk-headless"; \
	command -v mvn >/dev/null || missing="$$missing maven"; \
	command -v setpriv >/dev/null || missing="$$missing util-linux"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "install:$$missing (needs root)"; exit 1; fi; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; fi

browser-deps:  ## Debian's chromium for the dashboard's browser tests (Playwright drives it; no download of its own)
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "install: chromium (needs root)"; exit 1; fi; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; fi

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

setup: system-deps $(STAMP)  ## venv + package + server artifacts + Spark connectors
	$(BIN)/vitalwatch infra fetch

run: setup  ## `vitalwatch run`: infra up, a champion model, every app (bronze, silver, scoring and alerts, lake and serving copies, notifier), the simulator, API and dashboard, then a summary
	$(BIN)/vitalwatch run

train: setup  ## train the crisis-risk model on the real ICU data, register it, print the metric table
	$(BIN)/vitalwatch train
	$(BIN)/vitalwatch triage train

lint: $(STAMP)
	$(BIN)/ruff check lib jobs tests dashboards notebooks

test: setup lint browser-deps  ## the whole suite on the real local servers and a real browser
	$(BIN)/vitalwatch infra fetch --no-spark --compose
	mkdir -p test-artifacts
	$(BIN)/pytest -q --junitxml=test-artifacts/junit.xml

test-fast: $(STAMP)  ## the pure tests: no SparkSession, no servers (markers set from fixtures in tests/conftest.py)
	$(BIN)/pytest -q -m "not spark and not servers"

down:
	$(BIN)/vitalwatch infra down

clean: down
	rm -rf .work test-artifacts

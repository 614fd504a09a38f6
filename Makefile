# pitchside: `make up` runs the stack on this machine, `make test` runs every test,
# `make check` runs every static check (lint, format, types, import contracts) and then the tests.
# Both create .venv when it is missing and install into it; a stamp per step makes repeated
# runs quick (edit pyproject.toml or constraints.txt and the next run installs again).

PYTHON ?= python3.11
VENV ?= .venv
SOURCE ?=
# Only where `import torchvision` fails (no CPU build on the registry): see ENVIRONMENT.md.
TORCHVISION_SHIM ?= ../shared/tools/torchvision-cpu-shim

PIP := $(VENV)/bin/python -m pip
INSTALL := $(PIP) install -c constraints.txt

.PHONY: up test check lint types imports torch install install-dev tools

up: $(VENV)/.stamp-serve
	$(VENV)/bin/pitchside up $(if $(SOURCE),--source "$(SOURCE)")

test: $(VENV)/.stamp-dev
	$(VENV)/bin/python -m pytest

check: lint types imports test

lint: $(VENV)/.stamp-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

types: $(VENV)/.stamp-dev
	$(VENV)/bin/mypy

imports: $(VENV)/.stamp-dev
	$(VENV)/bin/lint-imports

install: $(VENV)/.stamp-serve
install-dev: $(VENV)/.stamp-dev
torch: $(VENV)/.stamp-torch

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# `opencv-python` (declared by trackers) satisfied by the headless OpenCV, before anything
# that declares it: see packaging/opencv-python-headless-alias and README, Install notes.
OPENCV_ALIAS := packaging/opencv-python-headless-alias
$(VENV)/.stamp-alias: $(OPENCV_ALIAS)/pyproject.toml constraints.txt | $(VENV)/bin/python
	$(INSTALL) ./$(OPENCV_ALIAS)
	touch $@

# Serving needs no PyTorch: the project and its runtime dependencies only.
$(VENV)/.stamp-serve: pyproject.toml constraints.txt $(VENV)/.stamp-alias | $(VENV)/bin/python
	$(INSTALL) -e .
	touch $@

# torch first, pinned: its CPU wheel is local here, an unpinned resolve pulls GBs of CUDA.
# Then the torchvision shim, only where torchvision does not import and the shim exists.
$(VENV)/.stamp-torch: constraints.txt | $(VENV)/bin/python
	$(INSTALL) torch==2.13.0
	@if ! $(VENV)/bin/python -c "import torchvision" 2>/dev/null && [ -d "$(TORCHVISION_SHIM)" ]; then \
		echo "torchvision does not import: installing $(TORCHVISION_SHIM)"; \
		$(INSTALL) "$(TORCHVISION_SHIM)"; \
	fi
	touch $@

# Everything: serving, training (Ultralytics, MLflow), the OpenVINO engine and the checks.
$(VENV)/.stamp-dev: pyproject.toml constraints.txt $(VENV)/.stamp-torch $(VENV)/.stamp-alias
	$(INSTALL) -e ".[train,openvino,dev]"
	touch $@ $(VENV)/.stamp-serve

# checkov (the policy scan of deploy/) pins packaging<24, which pytest cannot use: it gets a
# virtual environment of its own, linked as .venv/bin/checkov, where the tests look for it.
CHECKOV_VERSION := 3.3.30
CHECKOV_VENV := $(VENV)/tools/checkov
tools: $(VENV)/.stamp-tools
$(VENV)/.stamp-tools: Makefile | $(VENV)/bin/python
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install -q checkov==$(CHECKOV_VERSION)
	ln -sf ../tools/checkov/bin/checkov $(VENV)/bin/checkov
	touch $@

# Two commands for a fresh machine (see README.md):
#   make toy    set everything up and run the toy study (the whole DAG) on this machine
#   make test   set everything up and run the test suite (what CI runs)
#   make resume continue the study after Snakemake was killed (docs/workflow.md, "Killed runs")
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= all
# torch/torchvision first and pinned: pip then finds them satisfied and never pulls another build
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1

.PHONY: toy test setup weights clean-results resume

# the mmseg extra is installed too: its tests are part of the suite (CI fails if they skip, .ci/run)
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH_PINS)
	$(BIN)/pip install -q -e '.[test,slurm,mmseg]'
	touch $@

# the profiles by name (snakemake --profile local / --profile slurm): linked into ~/.config/snakemake
setup: $(BIN)/.installed
	$(BIN)/scpdiff install-profiles

weights: setup
	$(BIN)/scpdiff weights

toy: weights
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/snakemake --cores $(CORES)

# SNAKEMAKE_ARGS: the rest of the killed command line (--configfile, --profile, targets)
resume:
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/scpdiff resume --cores $(CORES) -- $(SNAKEMAKE_ARGS)

test: weights
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest -q --durations=25 -n auto --dist loadgroup --no-loadscope-reorder

clean-results:
	rm -rf results/toy results/smoke work/toy work/smoke

# dlrecipes: every target installs what it needs into .venv first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
ARGS   ?=
WORKERS ?= 0
DIST   ?= dist
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: help venv demo test test-all lint format bench results dist image-classification text-bilstm fine-tuning \
	pruning train-distributed clean

help: ## list the targets
	@grep -E '^[a-zA-Z_%-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-24s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

venv: $(STAMP) ## create .venv and install dlrecipes with its dev tools

demo: $(STAMP) ## train the image recipe on the embedded MNIST sample; prints test accuracy and the run dir
	$(PY) recipes/image_classification/recipe.py train $(ARGS)

test: $(STAMP) ## the test suite but its `slow` end-to-end tests (2 workers, about 5 minutes)
	$(PY) -m pytest -q -n 2 -m "not slow" tests

test-all: $(STAMP) ## the whole test suite, the `slow` end-to-end tests included (tens of minutes)
	$(PY) -m pytest -q -n 2 tests

lint: $(STAMP) ## ruff lint and format check
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(STAMP) ## ruff fix and format
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

dist: $(STAMP) ## build the wheel and sdist into dist/; the recipes ship inside (dlrecipes/recipes/)
	$(PY) -m build --outdir $(DIST) .

bench: $(STAMP) ## side-by-side measurements; writes benchmarks/results/ (make bench BENCH=image)
	$(PY) benchmarks/run.py $(BENCH)

results: $(STAMP) ## rewrite every measured figure in the READMEs from benchmarks/results/*.json
	$(PY) benchmarks/render.py

image-classification: $(STAMP) ## train the image recipe: make image-classification ARGS="--epochs 5"
	$(PY) recipes/image_classification/recipe.py train $(ARGS)

text-bilstm: $(STAMP) ## train the text recipe on Rotten Tomatoes snippets: make text-bilstm ARGS="--arch bigru"
	$(PY) recipes/text_bilstm/recipe.py train $(ARGS)

fine-tuning: $(STAMP) ## fine-tune MiniLM on Rotten Tomatoes snippets: make fine-tuning ARGS="--labels-per-class 50"
	$(PY) recipes/fine_tuning/recipe.py train $(ARGS)

pruning: $(STAMP) ## prune a trained model (default: the image recipe's) and compare: make pruning ARGS="--model runs/.../model.keras"
	$(PY) recipes/pruning/recipe.py train $(ARGS)

# One training run as WORKERS processes on 127.0.0.1 (2 unless given), through
# MultiWorkerMirroredStrategy (dlrecipes/multihost/launch.py); the README shows several hosts.
train-distributed: $(STAMP) ## train one run as N processes: make train-distributed RECIPE=image_classification WORKERS=2 ARGS="--epochs 5"
	@test -n "$(RECIPE)" || { echo "error: give RECIPE=<name>, one of: $$(ls recipes | grep -v '\.')"; exit 2; }
	$(PY) -m dlrecipes.multihost.launch --workers $(or $(filter-out 0,$(WORKERS)),2) -- \
		$(PY) recipes/$(subst -,_,$(RECIPE))/recipe.py train $(ARGS)

# Any recipe: tune-text-bilstm runs recipes/text_bilstm/recipe.py. WORKERS=N: a keras-tuner chief and
# N workers on 127.0.0.1 (dlrecipes/tuning/launch.py); recipes/TUNING.md shows several hosts.
tune-%: $(STAMP) ## tune a recipe: make tune-image-classification ARGS="--tuner random" WORKERS=2
	$(PY) -m dlrecipes.tuning.launch --workers $(WORKERS) -- \
		$(PY) recipes/$(subst -,_,$*)/recipe.py tune $(ARGS)

clean: ## remove .venv, runs/, dist/ and the tests' cache .cache/
	rm -rf $(VENV) runs $(DIST) .cache

# vae-tutorial: set-up, tests and the notebook server.
#
#   make lab            create .venv, install the package with JupyterLab, open notebooks/00_index.ipynb
#   make test           unit tests + every notebook (nbval, quick mode) in one pytest run,
#                       over two worker processes (pytest-xdist; TEST_WORKERS=0: in one process)
#   make test-fast      the unit tests not marked `slow`: no notebooks, no subprocess, nbgrader
#                       or multi-second tests (about 2 minutes; make test still runs them all)
#   make site           the course website from the committed notebooks (none is run): docs/_build/html
#   make browser-test   run a notebook in a real JupyterLab in headless Chromium (needs /usr/bin/chromium),
#                       and read every page of the built website there (tests/browser/test_site.py)
#   make lint           ruff check + ruff format --check + mypy (type check of the package)
#   make benchmark      time the training step (benchmarks/bench_training.py)
#   make assignments    regenerate the student versions assignments/release/ from assignments/source/ (nbgrader)
#   make grade SUBMISSIONS=folder [GRADES=grades]
#                       autograde a folder of <student>/<assignment>/ submissions: GRADES/scores.csv
#                       (per student and part), GRADES/feedback/ (HTML), GRADES/timings.csv
#   make test-assignments  only the assignment tests (tests/test_assignment*.py; part of make test)
#   make clean          remove .venv and caches
#
# Every target uses the virtual environment's programs by path; nothing needs activating.
# Re-runs are quick: an extra is re-installed only when pyproject.toml changes.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
NOTEBOOK ?= notebooks/00_index.ipynb
PYTEST_ARGS ?=
# make test's pytest-xdist workers; each test file and each notebook is one unit (loadgroup,
# the groups set in tests/conftest.py): a notebook's cells share one kernel, a file's module
# fixtures are made once, and the files that start TensorFlow clusters run one after another.
TEST_WORKERS ?= 2
# Extra options for `jupyter lab`; as root (e.g. in a container) it needs --allow-root.
LAB_ARGS ?= $(if $(filter 0,$(shell id -u)),--allow-root)

# nbval: run every cell, compare only cells marked NBVAL_CHECK_OUTPUT (pyproject.toml's addopts
# add this environment's kernel and the sanitize file).
NBVAL_OPTS := --nbval-lax

.PHONY: lab test test-fast browser-test site lint benchmark clean venv assignments grade test-assignments

venv: $(BIN)/python

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# One stamp per extra; rebuilt when pyproject.toml changes (e.g. .venv/.installed-test).
$(VENV)/.installed-%: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[$*]"
	@touch $@

# The server's root is the repository (as on Binder); the browser opens $(NOTEBOOK).
# JupyterLab's classroom defaults come from LAB_SETTINGS (overrides.json: no question about
# Jupyter news, no update check; page_config.json: no build notices); binder/postBuild
# installs the same files on Binder, and tests/browser uses them too.
LAB_SETTINGS := binder/jupyter/lab/settings
lab: $(VENV)/.installed-lab
	$(BIN)/jupyter lab --ServerApp.root_dir="$(CURDIR)" --LabApp.default_url=/lab/tree/$(NOTEBOOK) \
		--LabApp.app_settings_dir="$(CURDIR)/$(LAB_SETTINGS)" $(LAB_ARGS)

# Quick mode shrinks epochs and data so the whole notebook series runs in minutes.
# VAE_TUTORIAL_OFFLINE is left as the caller has it: with internet, MNIST is downloaded;
# CI sets VAE_TUTORIAL_OFFLINE=1 and the notebooks use the sample bundled with the package.
# The browser test is marked `browser` and deselected here (pyproject addopts); see browser-test.
test: $(VENV)/.installed-test
	VAE_TUTORIAL_QUICK=1 $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup \
		tests notebooks $(NBVAL_OPTS) $(PYTEST_ARGS)

# The slow ones (marker `slow`, pyproject.toml) and the notebooks left out; -m replaces addopts' -m.
test-fast: $(VENV)/.installed-test
	VAE_TUTORIAL_QUICK=1 $(BIN)/python -m pytest -m "not slow and not browser" tests $(PYTEST_ARGS)

# tests/browser/test_site.py reads the site that `make site` built (it builds it if missing).
browser-test: $(VENV)/.installed-test $(VENV)/.installed-browser $(VENV)/.installed-site
	VAE_TUTORIAL_QUICK=1 $(BIN)/python -m pytest -m browser tests/browser $(PYTEST_ARGS)

# The course website: every warning is an error (-W), broken references too (-n). Notebooks are
# rendered as committed; docs/notebooks/ is their copy made by the build (gitignored).
site: $(VENV)/.installed-site
	$(BIN)/python -m sphinx -W --keep-going -n -b html docs docs/_build/html

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy vae_tutorial

benchmark: $(VENV)/.installed-test
	$(BIN)/python benchmarks/bench_training.py

# Course assignments (nbgrader, in the `teach` extra). nbgrader runs `alembic` from PATH, so
# the virtual environment's bin goes first. Grading works in a scratch copy ($(GRADES)/course).
ASSIGNMENTS := $(notdir $(wildcard assignments/source/*))
GRADES ?= grades
SUBMISSIONS ?=

assignments: $(VENV)/.installed-teach
	cd assignments && for a in $(ASSIGNMENTS); do \
		PATH="$(abspath $(BIN)):$$PATH" ../$(BIN)/nbgrader generate_assignment "$$a" --force --log-level=WARN || exit 1; \
	done
	rm -f assignments/gradebook.db

grade: $(VENV)/.installed-teach
	@test -n "$(SUBMISSIONS)" || { echo "usage: make grade SUBMISSIONS=<folder of <student>/<assignment>/ folders> [GRADES=grades]"; exit 2; }
	$(BIN)/python tools/grade_assignments.py "$(SUBMISSIONS)" "$(GRADES)"

test-assignments: $(VENV)/.installed-test
	$(BIN)/python -m pytest tests/test_assignments.py tests/test_assignment_mistakes.py $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build dist *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

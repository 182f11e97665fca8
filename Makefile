# One command each (see README): `make test`, `make demo`, `make lab`, `make student`.
# Every target first makes sure .venv exists and holds what it needs, in two
# layers: students' and self-learners' targets (lab, student, demo) install
# `.[lab]` only (JupyterLab, no nbgrader, no test tools); `make test` adds
# `.[course,test,cluster]` (cluster: Dask, for the tests of `grade --cluster`).
# An install runs again only when pyproject.toml changes.

PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
LAB_STAMP = $(VENV)/.cnnlab-lab-installed
STAMP     = $(VENV)/.cnnlab-installed
NOTEBOOKS = $(sort $(wildcard notebooks/*.ipynb))
PIP_QUIET = --quiet --disable-pip-version-check

# make lab / make student: PORT=8899 picks the port, NO_BROWSER=1 opens none
# (print the URL only); as root, --allow-root is added.
PORT ?=
NO_BROWSER ?=
PS ?= ps1
LAB_FLAGS = $(if $(PORT),--port=$(PORT)) $(if $(NO_BROWSER),--no-browser) \
	$$( [ "$$(id -u)" = 0 ] && echo --allow-root)

.PHONY: setup setup-lab sandbox-tools browser-tools test demo lab student lint bench clean

setup: $(STAMP)
setup-lab: $(LAB_STAMP)

$(VENV)/bin/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "cnnlab needs Python 3.11 or newer, found " + sys.version.split()[0]'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_QUIET) --upgrade pip

$(LAB_STAMP): pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install $(PIP_QUIET) -e '.[lab]'
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (cnnlab)" >/dev/null
	touch $(LAB_STAMP)

$(STAMP): $(LAB_STAMP)
	$(PY) -m pip install $(PIP_QUIET) -e '.[lab,course,test,cluster]'
	touch $(STAMP)

lint: $(STAMP)
	$(PY) -m ruff check .

# The grading sandbox needs bubblewrap (and setpriv, in util-linux). As root with
# apt (CI, containers) it is installed here; elsewhere the message says how.
sandbox-tools:
	@if command -v bwrap >/dev/null && command -v setpriv >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing bubblewrap (the grading sandbox) with apt-get"; \
		(apt-get install -y --no-install-recommends bubblewrap util-linux >/dev/null 2>&1 || \
		 (apt-get update >/dev/null && apt-get install -y --no-install-recommends bubblewrap util-linux >/dev/null)) \
		|| { echo "could not install bubblewrap"; exit 1; }; \
	else echo "note: bubblewrap (bwrap) is missing: grading tests will be skipped; install it with your package manager"; fi

# The browser tests (tests/browser/) drive Debian's chromium with Playwright
# (`playwright install` downloads from outside the package registries). As root
# with apt (CI, containers) it is installed here; elsewhere those tests skip.
browser-tools:
	@if command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing chromium (for the browser tests) with apt-get, about a minute"; \
		(apt-get install -y --no-install-recommends chromium >/dev/null 2>&1 || \
		 (apt-get update >/dev/null && apt-get install -y --no-install-recommends chromium >/dev/null)) \
		|| { echo "could not install chromium"; exit 1; }; \
	else echo "note: chromium is missing: the browser tests will be skipped; install it with your package manager"; fi

test: $(STAMP) sandbox-tools browser-tools
	$(PY) -m ruff check .
	$(PY) -m pytest

# The course's main job, headless: run every notebook with the reference
# package, saying which one runs and for how long (HTML copies that render
# offline land in build/), then train LeNet5 on MNIST.
demo: $(LAB_STAMP)
	MPLBACKEND=Agg $(PY) tools/run_notebooks.py --output-dir build $(NOTEBOOKS)
	@if [ -f cnnlab/__main__.py ]; then $(PY) -m cnnlab train --output-dir build; fi

# Every figure quoted in the README, re-measured (installs PyTorch CPU as a yardstick).
bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) benchmarks/bench_signal.py
	$(PY) benchmarks/bench_conv.py
	$(PY) benchmarks/bench_lenet_speed.py
	$(PY) benchmarks/bench_lenet_accuracy.py
	$(PY) benchmarks/bench_modern_vs_lenet.py
	$(PY) benchmarks/bench_grading.py

# The master notebooks with the reference package (hidden tests included).
lab: $(LAB_STAMP)
	$(VENV)/bin/jupyter lab $(LAB_FLAGS) notebooks/

# For self-learners: build the student release of assignment PS (default ps1:
# notebooks plus cnnlab/ with every exercise a stub) and open JupyterLab on it.
# The build needs nbgrader, which lives in a throwaway folder, not in .venv.
student: $(LAB_STAMP)
	@if [ ! -d assignments/release/$(PS) ]; then \
		echo "building the student release of $(PS) into assignments/release/$(PS)/"; \
		$(PY) tools/build_release.py $(PS) || exit 1; \
	else echo "assignments/release/$(PS)/ exists: opening it (delete it to start afresh)"; fi
	cd assignments/release/$(PS) && $(abspath $(VENV))/bin/jupyter lab $(LAB_FLAGS)

clean:
	rm -rf build .pytest_cache .hypothesis .ruff_cache

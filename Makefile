# One command each (see README): `make test`, `make demo`, `make lab`.
# Every target first makes sure .venv exists and holds the project; the install
# runs again only when pyproject.toml changes.

PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.cnnlab-installed
NOTEBOOKS = $(sort $(wildcard notebooks/*.ipynb))

.PHONY: setup sandbox-tools test demo lab lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "cnnlab needs Python 3.11 or newer, found " + sys.version.split()[0]'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[lab,course,test]'
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (cnnlab)" >/dev/null
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

test: $(STAMP) sandbox-tools
	$(PY) -m ruff check .
	$(PY) -m pytest

# The course's main job, headless: run every notebook with the reference
# package (HTML copies land in build/), then train LeNet5 on MNIST.
demo: $(STAMP)
	mkdir -p build
	MPLBACKEND=Agg $(PY) -m jupyter nbconvert --to html --execute --output-dir build $(NOTEBOOKS)
	@if [ -f cnnlab/__main__.py ]; then $(PY) -m cnnlab train --output-dir build; fi

# Every figure quoted in the README, re-measured (installs PyTorch CPU as a yardstick).
bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) benchmarks/bench_signal.py
	$(PY) benchmarks/bench_conv.py
	$(PY) benchmarks/bench_lenet_speed.py
	$(PY) benchmarks/bench_lenet_accuracy.py
	$(PY) benchmarks/bench_grading.py

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/

clean:
	rm -rf build .pytest_cache .hypothesis .ruff_cache

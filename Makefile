# Two things a newcomer runs: `make book` and `make test`. Both create or reuse
# the project-local virtual environment in .venv.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.crowdkit-installed
PROFILE ?= default
JOBS   ?= 2

# Set before any Python starts: retinaface breaks when TensorFlow was imported
# through another package first, unless legacy Keras is forced.
export TF_USE_LEGACY_KERAS := 1
export JUPYTER_PATH := $(abspath $(VENV))/share/jupyter

.PHONY: setup browser book test lab bench clean-runs

setup: $(STAMP)

$(STAMP): requirements.txt requirements-nodeps.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -r requirements-nodeps.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name crowdkit --display-name "Python (crowdkit)" --env TF_USE_LEGACY_KERAS 1
	$(VENV)/bin/crowdkit weights install-dlib
	touch $(STAMP)

book: setup
	$(VENV)/bin/crowdkit data check
	$(VENV)/bin/crowdkit book build --profile $(PROFILE) --jobs $(JOBS)

test: setup browser
	$(VENV)/bin/crowdkit data check
	$(PY) -m pytest

# The browser test (tests/test_book.py) opens the built book in Debian's chromium.
browser:
	@if ! command -v chromium >/dev/null 2>&1; then \
	  echo "installing Debian's chromium for tests/test_book.py"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  apt-cache policy chromium | grep -q 'Candidate: [0-9]' || $$SUDO apt-get update; \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y chromium; \
	fi

# As root (many containers) JupyterLab refuses to start without --allow-root.
lab: setup
	$(VENV)/bin/jupyter lab notebooks/ $$([ "$$(id -u)" = 0 ] && echo --allow-root)

bench: setup
	$(VENV)/bin/crowdkit bench find
	$(VENV)/bin/crowdkit bench video

clean-runs:
	rm -rf book/runs _build

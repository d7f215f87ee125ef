# rrg-lite: two commands do all set-up.
#   make book   create .venv if missing, install, execute every chapter on its CPU defaults, build _build/html
#   make test   install, run the unit and notebook tests, build the book, check the rendered pages in Chromium
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
JB     := $(BIN)/jupyter-book build . --warningiserror --nitpick --keep-going
# Progress bars are for people at a live kernel; in executed notebooks they would only fill the pages with noise.
export TQDM_DISABLE := 1
export PYTHONHASHSEED := 0
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install book test unit notebooks rendered browser clean help

help:
	@sed -n '1,4p' Makefile

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Re-install only when the dependency lists change. requirements-nodeps.txt holds medspaCy and PyRuSH, whose
# spaCy<3.8 pin (Python<3.12) would drag numpy back to 1.x; their other needs are in pyproject.toml.
$(STAMP): pyproject.toml requirements-nodeps.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade "pip>=23"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,book,full]'
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -r requirements-nodeps.txt
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	@touch $@

install: $(STAMP)

book: install
	$(JB)
	@echo "book: open _build/html/index.html"

# Headless Chromium for the rendered-page check (Debian's package; needs root or sudo when missing).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

# Notebook tests N at a time (pytest-xdist; each kernel then gets CPUs/N threads): make test NOTEBOOK_WORKERS=2.
# Off by default: see book/running.md, "How CI runs the chapters".
NOTEBOOK_WORKERS ?= 1
PYTEST := $(BIN)/python -m pytest
XDIST  := $(if $(filter-out 1,$(NOTEBOOK_WORKERS)),-n $(NOTEBOOK_WORKERS) --dist worksteal,)

# pytest exits 5 when a selection collects no tests. Here that means a stage vanished (a renamed marker, a deleted
# file), so it fails the target like any other error, with a line saying why.
define pytest_stage
	$(PYTEST) $(1) || { rc=$$?; [ $$rc -ne 5 ] || echo "make: 'pytest $(1)' collected no tests (exit 5)" >&2; exit $$rc; }
endef

# The notebook tests execute every chapter once, each within its time budget (tests/test_notebooks.py), and put the
# executed notebooks into the book's execution cache, so the book build after them does not run the chapters again.
test: install browser
	$(call pytest_stage,-m "not rendered and not notebook")
	$(call pytest_stage,-m notebook --durations=20 $(XDIST))
	$(JB)
	$(call pytest_stage,-m rendered)

unit: install
	$(call pytest_stage,-m "not rendered and not notebook")

notebooks: install
	$(call pytest_stage,-m notebook --durations=20 $(XDIST))

rendered: install browser
	$(call pytest_stage,-m rendered)

clean:
	rm -rf _build .pytest_cache

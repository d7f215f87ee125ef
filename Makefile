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

# Re-install only when the dependency list changes.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade "pip>=23"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,book,full]'
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

# The notebook tests execute every chapter once and put the executed notebooks into the book's execution cache,
# so the book build after them does not run the chapters a second time.
test: install browser
	$(BIN)/python -m pytest -m "not rendered"
	$(JB)
	$(BIN)/python -m pytest -m rendered

unit: install
	$(BIN)/python -m pytest -m "not rendered and not notebook"

notebooks: install
	$(BIN)/python -m pytest -m notebook

rendered: install browser
	$(BIN)/python -m pytest -m rendered

clean:
	rm -rf _build .pytest_cache

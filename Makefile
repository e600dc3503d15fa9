# Two commands are all the set-up there is: `make book` and `make test` create the virtual
# environment on first use (and again whenever pyproject.toml changes).
PYTHON  ?= python3
VENV    ?= .venv
PROFILE ?= demo
DATA    ?=
EXTRAS  ?= cpu,jax,dev,cluster
BIN      = $(VENV)/bin
STAMP    = $(VENV)/.installed

.PHONY: book pdf test test-jax test-e2e status clean help lint format

# The recipes read PROFILE and DATA from their environment ("$$DATA"), so that a path holding
# spaces, quotes or $ reaches the command as it was typed.
export PROFILE DATA

# Debian packages for `make pdf` (mura_thesis/pdf.py names the same set).
TEX_PACKAGES = texlive-xetex texlive-latex-recommended texlive-latex-extra texlive-fonts-recommended \
               fonts-freefont-otf lmodern latexmk poppler-utils

help:
	@echo "make book [PROFILE=demo|smoke|full] [DATA=/path/to/MURA-v1.1]  build the thesis"
	@echo "make pdf [PROFILE=...]                                         the thesis as _build/latex/thesis.pdf"
	@echo "make test                                                       the fast tests (a few minutes)"
	@echo "make test-jax                                                   the JAX tier: the library on KERAS_BACKEND=jax (CPU)"
	@echo "make test-e2e                                                   the end-to-end tests: smoke book, PDF, browser"
	@echo "make status [PROFILE=...]                                       which chapters would re-run"
	@echo "make lint / make format                                         check / apply the code style (ruff)"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[$(EXTRAS)]'
	touch $@

book: $(STAMP)
	$(BIN)/mura-thesis build --profile "$$PROFILE" $(if $(DATA),--data "$$DATA")

pdf:
	@command -v xelatex >/dev/null 2>&1 && command -v latexmk >/dev/null 2>&1 || \
		{ echo "make pdf needs XeLaTeX: sudo apt-get install --no-install-recommends $(TEX_PACKAGES)"; exit 1; }
	@$(MAKE) --no-print-directory $(STAMP)
	$(BIN)/mura-thesis build --pdf --profile "$$PROFILE" $(if $(DATA),--data "$$DATA")

status: $(STAMP)
	$(BIN)/mura-thesis status --profile "$$PROFILE" $(if $(DATA),--data "$$DATA")

lint: $(STAMP)
	$(BIN)/ruff check mura_lib mura_thesis tests benchmarks
	$(BIN)/ruff format --check mura_lib mura_thesis tests benchmarks

format: $(STAMP)
	$(BIN)/ruff format mura_lib mura_thesis tests benchmarks
	$(BIN)/ruff check --fix mura_lib mura_thesis tests benchmarks

# The fast tier: the library, the statistics, training, the pipeline's parts, Ray and faults.
test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow and not jax"

# The JAX tier (tests marked `jax`): training with exact resume, the run store, the multi-view
# model, Grad-CAM and evaluation on KERAS_BACKEND=jax (JAX's CPU wheel, the `jax` extra), compared
# with TensorFlow. MURA_REQUIRE_JAX=1 fails them, instead of skipping them, if JAX is missing.
test-jax: $(STAMP)
	MURA_REQUIRE_JAX=1 $(BIN)/python -m pytest -m jax

# The end-to-end tier: the smoke book built and rebuilt, its PDF, every page in a browser, and
# the reproduction check of two builds (tests marked `slow`).
test-e2e: $(STAMP)
	$(BIN)/python -m pytest -m slow

clean:
	rm -rf _build build

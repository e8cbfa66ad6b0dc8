# Set-up is part of every target: `make demo` and `make test` work on a fresh clone.
# torch is installed first, pinned, so pip never pulls a CUDA build.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.sertool-installed
DEMO   := demo-out

.PHONY: setup demo test test-fast bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test,embeddings,export,dask,ssl,vad]'
	touch $@

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/sertool prepare ravdess examples/ravdess -o $(DEMO)/examples.csv
	$(BIN)/sertool extract $(DEMO)/examples.csv --features lightsernet_mfcc -o $(DEMO)/feats
	$(BIN)/sertool store describe $(DEMO)/feats/examples.lightsernet_mfcc-*.h5
	$(BIN)/sertool predict examples/ -o $(DEMO)/predictions.csv --no-resume
	cat $(DEMO)/predictions.csv

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

bench: $(STAMP)
	$(BIN)/python bench/run_all.py --skip-models

clean:
	rm -rf $(DEMO) .pytest_cache

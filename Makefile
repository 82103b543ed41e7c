# Quick start: `make demo` (the whole road on the embedded digits data) and `make test`.
# Both create .venv and install everything (PyTorch, Lava with its fix, Norse) first.
PY := .venv/bin/python
STAMP := .venv/.kdsnn-installed

.PHONY: demo test venv bench clean

$(STAMP): pyproject.toml scripts/setup_env.sh scripts/setup_vendors.sh scripts/patch_lava.py
	bash scripts/setup_env.sh
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(PY) -m kdsnn demo

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest tests

bench: $(STAMP)
	$(PY) bench/accuracy.py --width 0.25 --epochs 30 --teacher-epochs 30 --seeds 0 1 2 3 4 --write docs/benchmarks.md
	$(PY) bench/train_throughput.py --write docs/benchmarks.md
	$(PY) bench/simulator.py --write docs/benchmarks.md

clean:
	rm -rf .venv .venv-vendors runs build *.egg-info

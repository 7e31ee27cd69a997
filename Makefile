# The two set-up commands of the README: `make demo` (install, then run the main job) and `make test`.
PYTHON ?= python3
PIP = $(PYTHON) -m pip

.PHONY: install demo test bench

install:
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e ".[test]"

demo: install
	priorfit demo --out priorfit_demo.png

test: install
	$(PYTHON) -m pytest

bench: install
	$(PYTHON) benchmarks/bench_core.py all --reference ../shared/reference/naive_pfn.py

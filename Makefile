# zkfast developer entry points. PYTHON defaults to the project venv when there is one.
#
#   make compile      re-cythonize and build the compiled core in place (always, even if unchanged)
#   make debug        same, with Cython annotate (src/zkfast/_core.html) and line tracing
#   make test         the whole suite on the compiled core
#   make test-pure    the whole suite on the pure-Python twin (ZKFAST_PURE=1)
#   make bench        pytest-benchmark, compiled and pure side by side
#   make lint         ruff, mypy --strict, cython-lint
#   make sim SEED=N   one seeded simulator run (MODE=election|standalone, PEERS=3|5)
#   make wheels       manylinux wheels with cibuildwheel (needs docker)

PYTHON ?= $(if $(wildcard .venv/bin/python),.venv/bin/python,python3)
PYTEST ?= $(PYTHON) -m pytest
CORE_PYX := src/zkfast/_core.pyx
CORE_GENERATED := src/zkfast/_core.c src/zkfast/_core.html

.PHONY: compile debug test test-pure bench lint sim wheels clean

# Build under build/ and rename the extension into src/: a process that has the old one
# loaded keeps its (unlinked) copy instead of crashing on a file rewritten under it.
define build_core
	rm -f $(CORE_GENERATED)
	$(1) $(PYTHON) setup.py build_ext --force --build-lib build/core
	for so in build/core/zkfast/_core.*.so; do \
	    name=$$(basename $$so); \
	    cp $$so src/zkfast/.$$name.tmp && mv -f src/zkfast/.$$name.tmp src/zkfast/$$name; \
	done
	$(PYTHON) -c "import zkfast._impl as i; assert i.IMPLEMENTATION == 'compiled'; print('zkfast core:', i.IMPLEMENTATION)"
endef

compile:
	$(call build_core,)

debug:
	$(call build_core,ZKFAST_DEBUG_BUILD=1)
	@echo "annotated source: src/zkfast/_core.html (line tracing on: coverage and profilers see .pyx lines)"

test:
	$(PYTEST) -q tests benchmarks --benchmark-disable

test-pure:
	ZKFAST_PURE=1 $(PYTEST) -q tests benchmarks --benchmark-disable

SEED ?= 1
MODE ?= election
PEERS ?= 3
sim:
	$(PYTHON) -m zkfast.testing.vopr --seed $(SEED) --mode $(MODE) --peers $(PEERS)

bench:
	$(PYTEST) benchmarks --benchmark-only --benchmark-group-by=group

lint:
	$(PYTHON) -m ruff check src tests benchmarks
	$(PYTHON) -m mypy --strict
	# cython-lint runs pycodestyle from PATH: put the interpreter's bin directory first.
	PATH="$(abspath $(dir $(PYTHON))):$$PATH" $(PYTHON) -m cython_lint.cython_lint --max-line-length 100 src/zkfast/*.pyx src/zkfast/*.pxd

# cibuildwheel builds inside the manylinux containers, so it needs a running docker daemon
# (and `pip install cibuildwheel`). Same matrix and smoke test as .github/workflows/wheels.yml.
wheels:
	@$(PYTHON) -c "import cibuildwheel" 2>/dev/null || \
	    { echo "make wheels: needs cibuildwheel (pip install cibuildwheel) and docker"; exit 1; }
	CIBW_BUILD="cp310-* cp311-* cp312-* cp313-*" CIBW_SKIP="*-musllinux_*" \
	CIBW_TEST_COMMAND="python -c \"import zkfast._impl as i; assert i.IMPLEMENTATION == 'compiled'\"" \
	    $(PYTHON) -m cibuildwheel --platform linux --output-dir wheelhouse

clean:
	rm -rf build wheelhouse $(CORE_GENERATED) src/zkfast/_core.*.so src/zkfast/_pure_build.py

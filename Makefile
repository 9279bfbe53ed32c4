# Two commands on a fresh machine:  `make demo` (the main job) and `make test`.
# Both create .venv and install what they need. On a machine without an NVIDIA GPU the
# CPU build of torch 2.13.0 is installed first so pip does not fetch a CUDA build.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
OUT ?= out/demo
DEMO_DEPS := noisemix/corpus/install-demo-deps.sh

.PHONY: venv demo-deps browser-deps test test-demo demo experiment bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	@if ! command -v nvidia-smi >/dev/null 2>&1; then $(PY) -m pip install -q torch==2.13.0; fi
	$(PY) -m pip install -q -e '.[train,test,demo]'
	touch $@

demo-deps: venv
	@if [ -f $(DEMO_DEPS) ]; then bash $(DEMO_DEPS) $(PY); fi

# The report's page is tested in Debian's chromium (installed with apt-get as root; skipped, saying why, without root).
browser-deps:
	@bash scripts/install-browser.sh

test: demo-deps browser-deps
	$(PY) -m pytest -q

# The full demo corpus (built twice, about 2 min each on 2 cores) and the committed manifests/demo*: 4.3 min.
test-demo: demo-deps
	$(PY) -m pytest -q -m demo_full

# The paper's claims on the demo benchmark (8 arms x 3 seeds; 60 min measured on 2 free cores, see the README): benchmarks/results/demo-claims/
experiment: demo-deps
	$(VENV)/bin/dat experiment experiments/demo-claims.toml --out out/claims

demo: demo-deps
	bash scripts/demo.sh $(VENV) $(OUT)

bench: venv
	$(PY) benchmarks/bench_render.py
	$(PY) benchmarks/bench_render.py --noise-rate 16000
	$(PY) benchmarks/bench_render.py --curve 20,50,200,1000,2000
	$(PY) benchmarks/bench_build.py
	$(PY) benchmarks/bench_build_real.py
	$(PY) benchmarks/bench_validate.py
	$(PY) benchmarks/bench_export.py
	$(PY) benchmarks/lhotse_fidelity.py
	$(PY) benchmarks/bench_dat_loader.py
	$(PY) benchmarks/bench_dat_step.py

clean:
	rm -rf $(VENV) out

# make install:         a virtual environment in .venv with the package and the extras in EXTRAS (default: test,
#                       which adds the reference libraries the tests compare with), plus the built-in data.
# make install-runtime: the package with its runtime dependencies only (what the demo needs), plus the data.
# make test:            install, then the test suite.     make demo: install-runtime, then the main job.
# One stamp file per set of extras (.venv/.installed-<extras>): `make demo` then `make test` adds the test
# extra to the same environment.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
EXTRAS ?= test
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check

.PHONY: install install-runtime test test-gpu demo lint fashion-mnist clean

install: $(VENV)/.installed-$(EXTRAS)

install-runtime: $(VENV)/.installed-runtime

$(VENV)/.installed-runtime: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) -e .
	@$(MAKE) --no-print-directory fashion-mnist
	touch $@

$(VENV)/.installed-%: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) -e '.[$*]'
	@# Reference implementations the tests compare with; --no-deps because their pins would replace
	@# torch (facenet-pytorch) or need the full tensorflow package (tf-keras, used only to build TF-slim's v3).
	@if echo ',$*,' | grep -q ',test,'; then \
		echo "$(PIP) --no-deps facenet-pytorch tf-slim tf-keras"; \
		$(PIP) --no-deps 'facenet-pytorch>=2.5' 'tf-slim>=1.1' 'tf-keras>=2.15'; \
	fi
	@$(MAKE) --no-print-directory fashion-mnist
	touch $@

# Fashion-MNIST (the demo's data) from Debian's dataset-fashion-mnist where apt is available as root;
# otherwise the library falls back to torchvision's downloader (see README, "Data").
fashion-mnist:
	@if dpkg -s dataset-fashion-mnist >/dev/null 2>&1; then \
		echo "Fashion-MNIST: Debian package dataset-fashion-mnist is installed"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "Fashion-MNIST: apt-get install dataset-fashion-mnist (the 70,000 Fashion-MNIST images, 30 MB)"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 \
		|| (echo "Fashion-MNIST: apt-get update (package lists), then apt-get install dataset-fashion-mnist" \
			&& apt-get update -q >/dev/null 2>&1 \
			&& DEBIAN_FRONTEND=noninteractive apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1) \
		|| echo "warning: could not apt-get install dataset-fashion-mnist; torchvision's downloader will be used"; \
	else \
		echo "Fashion-MNIST: no root apt here; torchvision's downloader will be used when needed"; \
	fi

test: install
	$(BIN)/ruff format --check --quiet src tests benchmarks || (echo "ruff format would change the files above: run ruff format src tests benchmarks"; exit 1)
	@# OpenVINO's tests run in a process of their own: once its runtime is loaded, an unrelated later test of the
	@# same process once died of a segmentation fault that does not happen alone.
	$(BIN)/python -m pytest -q --ignore=tests/test_deploy.py
	$(BIN)/python -m pytest -q tests/test_deploy.py

# The CUDA code paths (nvJPEG decoding, GPU evaluation, bf16/fp16 training, optimised CUDA inference):
# needs a GPU; benchmarks/gpu_session.sh runs these and then the GPU benchmark suite in one call.
test-gpu: install
	$(BIN)/python -m pytest -q tests_gpu

# The main job: the paper's residual study, cpu preset, on the built-in Fashion-MNIST: Inception-v3 vs
# Inception-ResNet-v1, 6 paired seeds, two runs at a time (the cpu-evidence preset's design with fewer seeds).
# It ends by printing the verdict lines (95 % t-intervals, exact sign-flip p-values) and the report's path.
demo: install-runtime
	$(BIN)/inception-resnet models
	$(BIN)/inception-resnet study compare --preset cpu --out study-results/cpu/compare --quiet

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache

# The two commands of the README:
#   make run    set up (libtorch, data), build, and run the quick WikiText-2 comparison suite
#   make test   set up, build, and run the whole test suite
# Both are idempotent: libtorch is cached in ~/.cache/fixclf, the data verified in place.
SHELL := /bin/bash
CARGO ?= cargo
SUITE ?= configs/wt2-quick.toml

.PHONY: run run-seeds test setup libtorch debian data data-vision vision vision-seeds build lint bench gpu gpu-suite torchrun-check clean-cache

run: setup
	$(CARGO) run --release -- suite --config $(SUITE)

test: setup
	$(CARGO) test --release

setup: libtorch debian data

libtorch:
	@lib=$$(./scripts/setup-libtorch.sh) && ln -sfn "$$lib" .libtorch && echo "libtorch: $$lib"

# Debian's packages the build reads: gloo's headers (libgloo-dev) for the distributed shim,
# csrc/fixclf_dist.cpp; libjpeg-turbo (libjpeg62-turbo-dev) for csrc/fixclf_jpeg.c.
debian:
	@./scripts/setup-debian.sh

data:
	@./data/fetch.sh

# Fashion-MNIST for the image experiments (data/fashion-mnist/; CIFAR: see data/README.md).
data-vision:
	@./data/fetch.sh --vision

# The image comparison on Fashion-MNIST (configs/fmnist-quick.toml, about 13 min on 2 cores).
vision: setup data-vision
	$(CARGO) run --release -- suite --config configs/fmnist-quick.toml

# The quick WikiText-2 comparison under three seeds (configs/wt2-seeds.toml, about 25 min on
# 2 cores after make run: it reuses that suite's embeddings).
run-seeds: setup
	$(CARGO) run --release -- suite --config configs/wt2-seeds.toml

# The same comparison under three seeds (configs/fmnist-seeds.toml, about 30 min on 2 cores).
vision-seeds: setup data-vision
	$(CARGO) run --release -- suite --config configs/fmnist-seeds.toml

build: setup
	$(CARGO) build --release

lint: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --all-targets -- -D warnings

bench: setup
	$(CARGO) run --release -- bench lm

# On a CUDA machine: build with --features cuda (full torch wheel), fixclf info, the LM step
# against PyTorch's, one paper-scale epoch per precision (scripts/gpu-check.sh; results in
# reports/gpu-check/).
gpu: data
	./scripts/gpu-check.sh

# On a CUDA machine: the paper suite, five runs at once (under MPS when it helps), after a
# concurrency probe (scripts/gpu-suite.sh; results in reports/gpu-suite/).
gpu-suite: data
	./scripts/gpu-suite.sh

# fixclf under PyTorch's own torchrun, with torch's dependencies installed once (pip, about
# 3.4 GB) in a venv of their own: tiny runs to the end, stopped by SIGINT and resumed, a
# killed rank and a restart, a suite (scripts/torchrun-check.sh; a few minutes; not in test).
torchrun-check: setup build
	./scripts/torchrun-check.sh

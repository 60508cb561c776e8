# dsnot: make test (what CI runs), make bench, make lint.
SHELL := /bin/bash
PREFIX ?= /usr/local
DESTDIR ?=
SWIFT ?= swift
PYTHON_PEER := $(CURDIR)/.venv/bin/python

export DSNOT_PYTHON := $(PYTHON_PEER)
export DSNOT_REPO := $(CURDIR)

.PHONY: all deps build test bench bench-ppl bench-forward bench-quality bench-scale lint format fixtures clean

all: build

deps:
	@scripts/install-deps.sh --check || scripts/install-deps.sh

build: deps
	$(SWIFT) build

## test: install missing dependencies, build, run every test (the README's test command; CI runs it).
test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

## bench: the benchmark suite (release build); prints ratios measured in one run.
bench: deps
	$(SWIFT) build -c release --product dsnot-bench
	$(SWIFT) build -c release --product dsnotctl
	DSNOT_BENCH_FIXTURES=$(CURDIR)/.fixtures \
	$$($(SWIFT) build -c release --show-bin-path)/dsnot-bench

## bench-ppl: dense SmolLM2-135M perplexity at L = 512 on the evaluation tokens, checked within 0.1 % of
## transformers' 41.97 (FIXTURES.md). Slow (minutes); not part of `make test`.
bench-ppl: deps fixtures
	$(SWIFT) build --build-tests
	DSNOT_PPL_FIXTURES=$(CURDIR)/.fixtures $(SWIFT) test --skip-build --filter smolLM2PerplexityMatchesTransformers

## bench-forward: SmolLM2 block forward throughput and its share of the same-shape cblas_sgemm rate.
bench-forward: deps fixtures
	$(SWIFT) build --build-tests
	DSNOT_BENCH_FIXTURES=$(CURDIR)/.fixtures $(SWIFT) test --skip-build --filter smolLM2BlockThroughput

## bench-quality: docs/results.md, SmolLM2-135M perplexity after magnitude/Wanda/SparseGPT with and
## without DSnoT (dsnot-bench quality). Slow (29 rows of 1–5 min each on 2 cores); rows are written as they
## finish. DSNOT_QUALITY_WINDOWS (default 16) sets the evaluation windows, DSNOT_QUALITY_ONLY="label,…" a subset.
bench-quality: deps fixtures
	$(SWIFT) build -c release --product dsnot-bench
	DSNOT_BENCH_FIXTURES=$(CURDIR)/.fixtures DSNOT_QUALITY_OUT=$(CURDIR)/docs/results.md \
		$$($(SWIFT) build -c release --show-bin-path)/dsnot-bench quality

## bench-scale: prune a synthetic LLaMA-7B-shaped checkpoint (about 14 GB under .fixtures/); peak RSS and
## wall time. Very slow; not part of `make bench`. BENCH_SCALE_ARGS="--blocks 2 --hidden 256" for a smoke run.
bench-scale: deps
	scripts/bench-scale.sh $(BENCH_SCALE_ARGS)

## fixtures: the real SmolLM2-135M checkpoint and Austen texts under .fixtures/ (FIXTURES.md), checksummed.
fixtures:
	scripts/fixtures.sh

lint:
	scripts/lint.sh

format:
	$(SWIFT) format format --in-place --recursive Sources Tests Package.swift

clean:
	rm -rf .build

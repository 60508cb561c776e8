# dsnot: make test (what CI runs), make bench, make lint.
SHELL := /bin/bash
PREFIX ?= /usr/local
DESTDIR ?=
SWIFT ?= swift
PYTHON_PEER := $(CURDIR)/.venv/bin/python

export DSNOT_PYTHON := $(PYTHON_PEER)
export DSNOT_REPO := $(CURDIR)

.PHONY: all deps build test bench lint format clean run

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
	$$($(SWIFT) build -c release --show-bin-path)/dsnot-bench

## run: dsnotd in the foreground with the unprivileged default (inbox/ → outbox/, .dsnot/ here; no root).
run: deps
	$(SWIFT) build --product dsnotd
	$$($(SWIFT) build --show-bin-path)/dsnotd

lint:
	scripts/lint.sh

format:
	$(SWIFT) format format --in-place --recursive Sources Tests Package.swift

clean:
	rm -rf .build

# dsnot: make run, make test (what CI runs), make demo, make install/uninstall, make bench, make lint.
SHELL := /bin/bash
PREFIX ?= /usr/local
DESTDIR ?=
SWIFT ?= swift
PYTHON_PEER := $(CURDIR)/.venv/bin/python

export DSNOT_PYTHON := $(PYTHON_PEER)
export DSNOT_REPO := $(CURDIR)

.PHONY: all deps build test bench bench-fleet bench-ppl bench-forward bench-quality bench-scale lint format fixtures clean \
	release install uninstall run demo man test-deploy

all: build

deps:
	@scripts/install-deps.sh --check || scripts/install-deps.sh

build: deps
	$(SWIFT) build

## test: install missing dependencies, build, run every test (the README's test command; CI runs it).
test: deps
	$(SWIFT) build --build-tests
	# Serial on purpose: the numeric suites are CPU-bound and synchronous; run in parallel on 2 cores
	# they hold every cooperative-pool thread and the daemon's async tests miss their deadlines.
	$(SWIFT) test --skip-build --no-parallel
	scripts/test-deploy.sh

## bench: the benchmark suite (release build); prints ratios measured in one run. Then the fleet
## benchmark (scripts/bench-fleet.sh): claim latency under 200 queued jobs, two nodes against one.
bench: deps
	$(SWIFT) build -c release --product dsnot-bench
	$(SWIFT) build -c release --product dsnotctl
	$(SWIFT) build -c release --product dsnotd
	DSNOT_BENCH_FIXTURES=$(CURDIR)/.fixtures \
	$$($(SWIFT) build -c release --show-bin-path)/dsnot-bench
	DSNOT_BENCH_FIXTURES=$(CURDIR)/.fixtures scripts/bench-fleet.sh

## bench-fleet: only the fleet benchmark (a few minutes; BENCH_FLEET_ARGS="--checkpoints 4 --claims 50").
bench-fleet: deps
	$(SWIFT) build -c release --product dsnotctl
	$(SWIFT) build -c release --product dsnotd
	DSNOT_BENCH_FIXTURES=$(CURDIR)/.fixtures scripts/bench-fleet.sh $(BENCH_FLEET_ARGS)

## bench-ppl: dense SmolLM2-135M perplexity at L = 512 on the evaluation tokens, checked within 0.1 % of
## transformers' 41.97 (FIXTURES.md). Slow (minutes); not part of `make test`.
bench-ppl: deps fixtures
	$(SWIFT) build --build-tests
	DSNOT_PPL_FIXTURES=$(CURDIR)/.fixtures $(SWIFT) test --skip-build --filter smolLM2PerplexityMatchesTransformers

## bench-forward: SmolLM2 block forward throughput and its share of the same-shape cblas_sgemm rate.
bench-forward: deps fixtures
	$(SWIFT) build --build-tests
	DSNOT_BENCH_FIXTURES=$(CURDIR)/.fixtures $(SWIFT) test --skip-build --filter smolLM2BlockThroughput

## bench-quality: docs/results.md, SmolLM2-135M perplexity (Persuasion, Northanger Abbey) after Wanda and
## SparseGPT at 50/60/70 % and 2:4: alone, + DSnoT reference, + DSnoT guarded, OWL + DSnoT guarded, over
## calibration seeds 0,1,2 (dsnot-bench quality). Very slow (78 prunings, plus a second one for each loss-check
## fallback, of 1.5–4 min each on 2 cores: about 3 h; guarded after SparseGPT repeats the base rows, since that
## profile does not refine SparseGPT); rows are written as they finish. DSNOT_QUALITY_WINDOWS (default 16), DSNOT_QUALITY_SEEDS ("0,1,2"),
## DSNOT_QUALITY_ONLY="label,…" (a subset, in that order), DSNOT_QUALITY_SET=candidates (the profile candidates).
bench-quality: deps fixtures
	$(SWIFT) build -c release --product dsnot-bench
	DSNOT_BENCH_FIXTURES=$(CURDIR)/.fixtures DSNOT_QUALITY_OUT=$(CURDIR)/docs/results.md \
		$$($(SWIFT) build -c release --show-bin-path)/dsnot-bench quality

## bench-scale: prune a synthetic LLaMA-7B-shaped checkpoint (about 14 GB under .fixtures/) with --compute bf16
## (BENCH_SCALE_COMPUTE); peak RSS, wall time, one block-sequence at L = 128 and 2048, and the projected time of
## N = 128, L = 2048 here and on a 32-core server. Very slow (≈ 25 min); not part of `make bench`.
## BENCH_SCALE_ARGS="--blocks 2 --hidden 256" for a smoke run.
bench-scale: deps
	scripts/bench-scale.sh $(BENCH_SCALE_ARGS)

## fixtures: the real SmolLM2-135M checkpoint and Austen texts under .fixtures/ (FIXTURES.md), checksummed.
fixtures:
	scripts/fixtures.sh

## run: dsnotd in the foreground with the unprivileged default (inbox/ → outbox/, .dsnot/ here; no root).
lint:
	scripts/lint.sh

format:
	$(SWIFT) format format --in-place --recursive Sources Tests Package.swift

clean:
	rm -rf .build

# ---------------------------------------------------------------------------------------------------
# Deployment (issue 7): install layout, a local daemon, the end-to-end demo. See README.md.

BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
UNITDIR ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
TMPFILESDIR ?= $(PREFIX)/lib/tmpfiles.d
SYSCONFDIR ?= /etc
## BIN: a directory holding built dsnotd and dsnotctl; empty means `make install` builds release first.
BIN ?=
## DSNOT_HOME: the local daemon's folder for make run / make demo (git-ignored).
DSNOT_HOME ?= $(CURDIR)/.dsnot
MAN_PAGES := man/dsnotctl.1 man/dsnotd.toml.5 man/dsnotd.8

## release: the two executables, optimised.
release: deps
	$(SWIFT) build -c release --product dsnotd
	$(SWIFT) build -c release --product dsnotctl

## install: binaries, systemd units and snippets, the configuration (kept if present), man pages.
## Uses the release build (made first if missing: `make release && sudo make install` builds as the user).
install:
	@set -e; bin="$(BIN)"; \
	if [ -z "$$bin" ]; then \
		bin=$$($(SWIFT) build -c release --show-bin-path); \
		[ -x "$$bin/dsnotd" ] && [ -x "$$bin/dsnotctl" ] || $(MAKE) release; \
	fi; \
	install -d "$(DESTDIR)$(BINDIR)" "$(DESTDIR)$(UNITDIR)" "$(DESTDIR)$(SYSUSERSDIR)" \
		"$(DESTDIR)$(TMPFILESDIR)" "$(DESTDIR)$(SYSCONFDIR)/dsnot" \
		"$(DESTDIR)$(MANDIR)/man1" "$(DESTDIR)$(MANDIR)/man5" "$(DESTDIR)$(MANDIR)/man8"; \
	install -m 0755 "$$bin/dsnotd" "$$bin/dsnotctl" "$(DESTDIR)$(BINDIR)/"; \
	for unit in dsnotd.service dsnotd.socket; do \
		sed -e 's#/usr/bin/#$(BINDIR)/#g' -e 's#/etc/dsnot/#$(SYSCONFDIR)/dsnot/#g' "systemd/$$unit" \
			>"$(DESTDIR)$(UNITDIR)/$$unit"; chmod 0644 "$(DESTDIR)$(UNITDIR)/$$unit"; \
	done; \
	install -m 0644 systemd/dsnot.sysusers "$(DESTDIR)$(SYSUSERSDIR)/dsnot.conf"; \
	install -m 0644 systemd/dsnot.tmpfiles "$(DESTDIR)$(TMPFILESDIR)/dsnot.conf"; \
	if [ -e "$(DESTDIR)$(SYSCONFDIR)/dsnot/dsnotd.toml" ]; then \
		echo "install: keeping existing $(DESTDIR)$(SYSCONFDIR)/dsnot/dsnotd.toml"; \
	else \
		install -m 0644 etc/dsnot/dsnotd.toml "$(DESTDIR)$(SYSCONFDIR)/dsnot/dsnotd.toml"; \
	fi; \
	install -m 0644 man/dsnotctl.1 "$(DESTDIR)$(MANDIR)/man1/"; \
	install -m 0644 man/dsnotd.toml.5 "$(DESTDIR)$(MANDIR)/man5/"; \
	install -m 0644 man/dsnotd.8 "$(DESTDIR)$(MANDIR)/man8/"
	@echo "install: done. As root: systemd-sysusers; systemd-tmpfiles --create; systemctl daemon-reload;"
	@echo "         put a calibration text at /srv/dsnot/calib.txt; systemctl enable --now dsnotd.socket dsnotd.service"

## uninstall: everything install put down, except a configuration that was edited.
uninstall:
	rm -f "$(DESTDIR)$(BINDIR)/dsnotd" "$(DESTDIR)$(BINDIR)/dsnotctl" \
		"$(DESTDIR)$(UNITDIR)/dsnotd.service" "$(DESTDIR)$(UNITDIR)/dsnotd.socket" \
		"$(DESTDIR)$(SYSUSERSDIR)/dsnot.conf" "$(DESTDIR)$(TMPFILESDIR)/dsnot.conf" \
		"$(DESTDIR)$(MANDIR)/man1/dsnotctl.1" "$(DESTDIR)$(MANDIR)/man5/dsnotd.toml.5" \
		"$(DESTDIR)$(MANDIR)/man8/dsnotd.8"
	@conf="$(DESTDIR)$(SYSCONFDIR)/dsnot/dsnotd.toml"; \
	if [ -f "$$conf" ] && cmp -s "$$conf" etc/dsnot/dsnotd.toml; then \
		rm -f "$$conf"; rmdir "$(DESTDIR)$(SYSCONFDIR)/dsnot" 2>/dev/null || true; \
	elif [ -f "$$conf" ]; then echo "uninstall: keeping edited $$conf"; fi

## man: regenerate the generated man page (dsnotctl.1) from the argument parser.
man:
	scripts/regenerate-man.sh

## test-deploy: units, man pages, configuration and install layout (part of make test).
test-deploy:
	scripts/test-deploy.sh

## run: dsnotd in the foreground on a local default under $(DSNOT_HOME) (no root needed).
run: deps release
	@scripts/local-daemon.sh run "$(DSNOT_HOME)"

## demo: the local daemon in the background prunes the real SmolLM2-135M; prints perplexities and sizes.
demo: deps release
	@scripts/local-daemon.sh demo "$(DSNOT_HOME)"

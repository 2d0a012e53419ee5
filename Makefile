# locosep — two commands: `make run` and `make test`. Everything else comes after those.
SHELL := /bin/bash
.DEFAULT_GOAL := run

# System packages the build, the tests and the demo need (Debian names).
APT_PKGS := pkg-config libasound2-dev mesa-vulkan-drivers libvulkan1 xvfb ffmpeg csound-soundfont libopus-dev
CARGO ?= cargo
BIN := target/debug/locosep
DEMO_SONG := $(firstword $(wildcard assets/demo/*/mixture.wav))

.PHONY: run test deps build fmt bench gpu-check fuzz package clean-stems

## deps: install the missing system packages (apt-get, as root or through sudo)
deps:
	@missing=$$(for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing: $$missing"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi
	@command -v $(CARGO) >/dev/null || { echo "cargo not found: install Rust from https://rustup.rs"; exit 1; }

## build: one debug-profile build (dependencies optimised) shared by run, test and bench
build: deps
	$(CARGO) build --bin locosep

## run: separate the bundled demo song into ./stems/ (replacing earlier demo stems), then
## score the stems against the song's true stems (SDR per stem, and over the mixture)
run: build
	@test -n "$(DEMO_SONG)" || { echo "no demo song under assets/demo/"; exit 1; }
	$(BIN) separate "$(DEMO_SONG)" --out stems --overwrite
	$(BIN) eval --data "$(dir $(patsubst %/,%,$(dir $(DEMO_SONG))))" --estimates stems
	@if [ -n "$$DISPLAY$$WAYLAND_DISPLAY" ]; then $(BIN) "$(DEMO_SONG)" || true; fi

## test: the whole test suite (installs what it needs first)
test: deps
	$(CARGO) test --all-targets -- --test-threads=2

## bench: the CPU benchmark quoted in the README
bench: build
	$(BIN) bench --preset small --seconds 2 --device cpu

## gpu-check: a release build, then the real-GPU check kit's Markdown report (GPU vs CPU parity
## for every preset, one training step's gradients, planner vs measured memory, throughput,
## the fused-attention bench) on stdout and in gpu-check.md. Full sizes on a hardware GPU,
## small shapes on a software adapter (lavapipe); GPU_CHECK_FLAGS=--small forces them.
GPU_CHECK_FLAGS ?=
gpu-check: deps
	$(CARGO) build --release --bin locosep
	target/release/locosep bench gpu-check $(GPU_CHECK_FLAGS) --report gpu-check.md

## package: a release build packaged as dist/locosep_<version>_<arch>.deb
package: deps
	$(CARGO) build --release --bin locosep
	packaging/build-deb.sh target/release/locosep dist

## fuzz: the fuzz targets of `make test` for 10 minutes each (FUZZ_SECONDS to change)
FUZZ_SECONDS ?= 600
fuzz: deps
	LOCOSEP_FUZZ_SECONDS=$(FUZZ_SECONDS) $(CARGO) test --test fuzz -- --test-threads=1 --nocapture

fmt:
	$(CARGO) fmt

# ittybit: two commands to start with.
#   make run   start ittybit on this machine
#   make test  run every test
# Both install what they need on a fresh Debian machine (ffmpeg via apt-get).

SHELL   := /bin/bash
GO      ?= go
BIN     := bin/ittybit
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT)
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
# Package test binaries run side by side; each can take a while on 2 cores.
TESTFLAGS ?= -race -count=1 -timeout 20m

.PHONY: all deps build run test test-long bench lint fmt golden reliability clean help

all: lint test

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

deps: ## install what the tests run where missing: ffmpeg, and curl, python3-requests, nodejs for the seed's snippets
	@pkgs=""; \
	{ command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null; } || pkgs="$$pkgs ffmpeg"; \
	command -v curl >/dev/null || pkgs="$$pkgs curl"; \
	command -v python3 >/dev/null || pkgs="$$pkgs python3"; \
	python3 -c 'import requests' 2>/dev/null || pkgs="$$pkgs python3-requests"; \
	node -e 'process.exit(typeof fetch === "function" ? 0 : 1)' 2>/dev/null || pkgs="$$pkgs nodejs"; \
	if [ -n "$$pkgs" ]; then \
		echo "installing$$pkgs (apt-get)"; \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$pkgs >/dev/null; \
	fi
	@ffmpeg -hide_banner -version | head -1

build: ## build bin/ittybit
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/ittybit

DEMO := data/demo
run: deps build ## encode a generated demo clip on this machine, the way a new user would
	@mkdir -p $(DEMO)
	@test -f $(DEMO)/clip.mov || ffmpeg -hide_banner -loglevel error -f lavfi -i testsrc2=size=1920x1080:rate=30:duration=10 \
		-f lavfi -i sine=frequency=440:duration=10 -c:v libx264 -preset ultrafast -c:a aac -shortest $(DEMO)/clip.mov
	$(BIN) video -i $(DEMO)/clip.mov -o $(DEMO)/clip-720p.mp4 --width 1280 --height 720 --quality high
	$(BIN) audio -i $(DEMO)/clip.mov -o $(DEMO)/clip.mp3 --format mp3 --quality high
	$(BIN) image -i $(DEMO)/clip.mov -o $(DEMO)/poster.webp --start 5 --format webp --width 640
	$(BIN) adaptive -i $(DEMO)/clip.mov -o $(DEMO)/stream/master.m3u8 --quality high

test: deps ## run every test (real ffmpeg on small generated clips)
	$(GO) test $(TESTFLAGS) ./...

test-long: deps ## the tests, then each fuzz target for a while
	$(GO) test $(TESTFLAGS) ./...
	$(GO) test -run '^$$' -fuzz '^FuzzValidate$$' -fuzztime 60s ./encoders/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime 60s ./encoders/probe/
	$(GO) test -run '^$$' -fuzz '^FuzzMasterPlaylist$$' -fuzztime 60s ./encoders/ffmpeg/

bench: deps ## measure: our wrapper against bare ffmpeg, argument building
	$(GO) test -run '^$$' -bench . -benchtime 5x ./encoders/...

lint: ## gofmt, go vet, staticcheck
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

fmt: ## format the code
	gofmt -w .

golden: ## rewrite the golden ffmpeg argument lists after a deliberate change
	$(GO) test ./encoders/ffmpeg/ -run TestArgsGolden -update

reliability: deps ## rerun the leader-kill fault test and write its figures into RELIABILITY.md
	$(GO) test -count=1 -run '^TestLeaderKill$$' -v ./test/ -update

clean: ## remove build outputs and demo data
	rm -rf bin data

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
# The S3 server the tests run (storage/s3test); keep in step with s3test.Version.
VERSITYGW_VERSION := v1.8.0
# The protoc plugins, at the versions that match google.golang.org/protobuf
# and google.golang.org/grpc in go.mod.
PROTOC_GEN_GO      := google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
PROTOC_GEN_GO_GRPC := google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
TOOLS   := $(CURDIR)/bin/tools
# Package test binaries run side by side; each can take a while on 2 cores.
TESTFLAGS ?= -race -count=1 -timeout 20m

.PHONY: all deps image-deps build image test-image run demo test test-long fuzz bench lint fmt golden proto reliability clean help

all: lint test

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

deps: ## install what running and testing need where missing: ffmpeg; curl, python3-requests, nodejs for the seed's snippets; npm and test/npm's tools (an OpenAPI linter, a client generator); prometheus (promtool) for the monitoring tests; chromium (with hls.js from test/npm) for HLS playback; systemd (systemd-analyze) for the unit checks; versitygw
	@pkgs=""; \
	{ command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null; } || pkgs="$$pkgs ffmpeg"; \
	command -v curl >/dev/null || pkgs="$$pkgs curl"; \
	command -v python3 >/dev/null || pkgs="$$pkgs python3"; \
	python3 -c 'import requests' 2>/dev/null || pkgs="$$pkgs python3-requests"; \
	node -e 'process.exit(typeof fetch === "function" ? 0 : 1)' 2>/dev/null || pkgs="$$pkgs nodejs"; \
	command -v npm >/dev/null || pkgs="$$pkgs npm"; \
	{ command -v promtool >/dev/null && command -v prometheus >/dev/null; } || pkgs="$$pkgs prometheus"; \
	command -v chromium >/dev/null || pkgs="$$pkgs chromium"; \
	command -v systemd-analyze >/dev/null || pkgs="$$pkgs systemd"; \
	if [ -n "$$pkgs" ]; then \
		echo "installing$$pkgs (apt-get)"; \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$pkgs >/dev/null; \
	fi
	@ffmpeg -hide_banner -version | head -1
	@# go install puts versitygw in GOBIN or GOPATH/bin, often not on PATH;
	@# storage/s3test looks there too.
	@gobin=$$($(GO) env GOBIN); [ -n "$$gobin" ] || gobin=$$($(GO) env GOPATH | cut -d: -f1)/bin; \
	if ! command -v versitygw >/dev/null && [ ! -x "$$gobin/versitygw" ]; then \
		echo "installing versitygw $(VERSITYGW_VERSION) (go install)"; \
		$(GO) install github.com/versity/versitygw/cmd/versitygw@$(VERSITYGW_VERSION); \
	fi
	@# The tests' npm tools, at the versions test/npm/package-lock.json pins.
	@if [ ! -d test/npm/node_modules ] || [ test/npm/package-lock.json -nt test/npm/node_modules ]; then \
		echo "installing the tests' npm tools (npm ci --prefix test/npm)"; \
		npm ci --prefix test/npm --no-audit --no-fund --loglevel=error && touch test/npm/node_modules; \
	fi

build: ## build bin/ittybit
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/ittybit

image-deps: ## install what make image and make test-image need where missing: podman (or buildah), runc, mmdebstrap
	@pkgs=""; \
	{ command -v podman >/dev/null || command -v buildah >/dev/null; } || pkgs="$$pkgs podman"; \
	command -v runc >/dev/null || pkgs="$$pkgs runc"; \
	command -v mmdebstrap >/dev/null || pkgs="$$pkgs mmdebstrap"; \
	if [ -n "$$pkgs" ]; then \
		echo "installing$$pkgs (apt-get)"; \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$pkgs >/dev/null; \
	fi

IMAGE ?= localhost/ittybit
image: image-deps ## build the container image $(IMAGE):VERSION and :latest (Containerfile; offline: mmdebstrap base, binary built here)
	VERSION="$(VERSION)" COMMIT="$(COMMIT)" GO="$(GO)" IMAGE="$(IMAGE)" $(SHELL) scripts/image.sh

test-image: image ## start 3 servers and an agent from the image with podman and run a video task through them
	ITTYBIT_TEST_IMAGE=1 ITTYBIT_IMAGE="$(IMAGE):latest" $(GO) test -count=1 -v -timeout 15m ./test/container/

DEMO := data/demo
run: deps build demo ## start ittybit dev (API on 127.0.0.1:8080, data in ./data); README shows the first task
	$(BIN) dev --http 127.0.0.1:8080 --data data

demo: ## make data/demo/clip.mov, a 10 s 1080p test clip with sound
	@mkdir -p $(DEMO)
	@test -f $(DEMO)/clip.mov || ffmpeg -hide_banner -loglevel error -f lavfi -i testsrc2=size=1920x1080:rate=30:duration=10 \
		-f lavfi -i sine=frequency=440:duration=10 -c:v libx264 -preset ultrafast -c:a aac -shortest $(DEMO)/clip.mov

test: deps ## run every test (real ffmpeg on small generated clips)
	$(GO) test $(TESTFLAGS) ./...

# How long test-long and fuzz run each fuzz target (go test -fuzztime).
FUZZTIME ?= 3m

fuzz: ## every fuzz target of the module (found with go test -list, none listed by hand), each for FUZZTIME (default 3m)
	GO=$(GO) FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

test-long: deps ## the tests, retirement of 50,000 tasks without the race detector, 30 schedules of the linearizability check, the container image's test (make test-image), then every fuzz target for FUZZTIME (default 3m; make fuzz)
	$(GO) test $(TESTFLAGS) ./...
	$(GO) test -count=1 -run '^TestRetirement$$' ./controlplane/server/
	ITTYBIT_LINEARIZABLE_SCHEDULES=30 $(GO) test -count=1 -timeout 60m -run '^TestLinearizable$$' ./test/
	$(MAKE) test-image
	$(MAKE) fuzz

bench: deps ## measure against the anchors (bare ffmpeg, raw Raft); prints a table and writes BENCHMARKS.md (about 25 minutes)
	$(GO) run ./test/bench -out BENCHMARKS.md

lint: ## gofmt, go vet, staticcheck
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

fmt: ## format the code
	gofmt -w .

golden: ## rewrite the golden ffmpeg argument lists after a deliberate change
	$(GO) test ./encoders/ffmpeg/ -run 'ArgsGolden' -update

proto: ## regenerate plugins/proto from encoder.proto (needs protoc: apt-get install protobuf-compiler)
	@command -v protoc >/dev/null || { echo "protoc not found: apt-get install protobuf-compiler"; exit 1; }
	GOBIN=$(TOOLS) $(GO) install $(PROTOC_GEN_GO)
	GOBIN=$(TOOLS) $(GO) install $(PROTOC_GEN_GO_GRPC)
	PATH="$(TOOLS):$$PATH" protoc --go_out=. --go_opt=paths=source_relative \
		--go-grpc_out=. --go-grpc_opt=paths=source_relative plugins/proto/encoder.proto

# The tests whose figures RELIABILITY.md holds.
FAULT_TESTS := TestLeaderKill|TestPartition|TestAgentKilledMidEncode|TestAgentDrain|TestPluginKilledMidEncode|TestWorkDirFull|TestHostileMedia|TestFleetNothingStuck|TestLostAssignmentAndReport

reliability: deps ## rerun the fault and hostile-input tests, one at a time, and write their figures into RELIABILITY.md
	$(GO) test -count=1 -parallel 1 -run '^($(FAULT_TESTS))$$' -v ./test/ -update

clean: ## remove build outputs and demo data
	rm -rf bin data

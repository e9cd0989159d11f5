# Laneway. `make help` lists the targets.
GO ?= go
PKGS := ./...

.PHONY: help test test-short chaos lint fmt bench bench-full bench-go demo build browser-setup screenshots

help: ## show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build the laneway binary into bin/
	$(GO) build -o bin/laneway ./cmd/laneway

test: browser-setup ## run every test with -race against real Redis and PostgreSQL (found or started), browser tests in chromium
	$(GO) vet $(PKGS)
	scripts/test-services $(GO) test -race -count=1 -timeout 15m $(PKGS)

test-short: browser-setup ## the same without -race (faster local loop)
	scripts/test-services $(GO) test -count=1 -timeout 10m $(PKGS)

browser-setup: ## install chromium (apt) and playwright-core (npm ci) for the browser tests, when missing
	scripts/browser-setup

screenshots: browser-setup ## retake docs/img/*.png (dashboard pages, demo report) with the browser tests
	LANEWAY_SCREENSHOTS=docs/img scripts/test-services $(GO) test -count=1 -timeout 10m -run 'TestDashboardInBrowser|TestDemoReportInBrowser' ./cli/internal/e2e

chaos: ## the fault suite: engine binaries, Redis and PostgreSQL of its own, faults through a TCP proxy (about 7 minutes on a quiet machine; prints the table of docs/RELIABILITY.md)
	$(GO) test -tags chaos -count=1 -timeout 30m -v -run TestFaults ./internal/chaos/

lint: ## gofmt, go vet and golangci-lint (pinned; installed into bin/ on first use, see .golangci.yml)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	scripts/lint $(PKGS)

fmt: ## format the code
	gofmt -w $$(git ls-files '*.go')

bench: ## lanebench, short sizes, embedded (under 3 minutes; see docs/BENCHMARKS.md)
	$(GO) build -o bin/lanebench ./cmd/lanebench
	bin/lanebench --short $(BENCH_FLAGS)

bench-full: ## lanebench at full sizes (long; pass BENCH_FLAGS="--broker redis://127.0.0.1:6379/N --database postgres://...")
	$(GO) build -o bin/lanebench ./cmd/lanebench
	bin/lanebench $(BENCH_FLAGS)

bench-go: ## the testing.B benchmarks of every package
	scripts/test-services $(GO) test -run '^$$' -bench . -benchtime 2s $(PKGS)

demo: ## the main job, embedded
	$(GO) run ./cmd/laneway demo

# Laneway. `make help` lists the targets.
GO ?= go
PKGS := ./...

.PHONY: help test test-short lint fmt bench demo build

help: ## show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build the laneway binary into bin/
	$(GO) build -o bin/laneway ./cmd/laneway

test: ## run every test with -race against real Redis and PostgreSQL (found or started)
	$(GO) vet $(PKGS)
	scripts/test-services $(GO) test -race -count=1 -timeout 15m $(PKGS)

test-short: ## the same without -race (faster local loop)
	scripts/test-services $(GO) test -count=1 -timeout 10m $(PKGS)

lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

fmt: ## format the code
	gofmt -w $$(git ls-files '*.go')

bench: ## short benchmark run (see docs/BENCHMARKS.md)
	scripts/test-services $(GO) test -run '^$$' -bench . -benchtime 2s $(PKGS)

demo: ## the main job, embedded
	$(GO) run ./cmd/laneway demo

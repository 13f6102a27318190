# The commands a newcomer needs. `make test` is what CI runs (through .ci/run).
GO ?= go
FUZZTIME ?= 10s

.PHONY: dev build test test-go test-fuzz test-node bench lint

dev: ## start the product on the embedded default (SQLite in ./countersign-data)
	$(GO) run ./cmd/countersign dev

build:
	CGO_ENABLED=0 $(GO) build -o bin/countersign ./cmd/countersign

test: lint test-go test-fuzz test-node ## the whole suite

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1)
	$(GO) vet ./...
	CGO_ENABLED=0 $(GO) build -o /dev/null ./cmd/countersign

test-go:
	$(GO) test -race -count=1 ./...

# Short coverage-guided runs of every fuzz target (one package and target at a time, as go test
# requires).
test-fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzAuthorizationDetails$$' -fuzztime $(FUZZTIME) ./internal/authz
	$(GO) test -run '^$$' -fuzz '^FuzzLoginHint$$' -fuzztime $(FUZZTIME) ./internal/authz
	$(GO) test -run '^$$' -fuzz '^FuzzParseFormBody$$' -fuzztime $(FUZZTIME) ./internal/server

test-node:
	test/node/run.sh

bench:
	$(GO) test -run '^$$' -bench . -benchtime 3s ./internal/server ./internal/store/sqlstore ./internal/token

# hookline's commands. With DATABASE_URL unset, run/test/bench start a private
# Postgres cluster under .hookline/pg (see .ci/postgres); with it set, they use it.

GO ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/hookline/hookline/delivery.Version=$(VERSION)

.PHONY: build run test chaos lint fuzz bench generate

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o hookline ./cmd/hookline

# Starts hookline on the local cluster: migrates, creates a demo merchant the
# first time (its keys are kept in .hookline/ and printed every time), serves.
# hookline's commands run from the checkout without DATABASE_URL find the same
# cluster by themselves (.hookline/pg).
run: build
	@set -e; \
	keys=".hookline/demo-merchant-local.json"; \
	if [ -n "$$DATABASE_URL" ]; then keys=".hookline/demo-merchant-$$(printf %s "$$DATABASE_URL" | sha256sum | cut -c1-12).json"; fi; \
	export DATABASE_URL="$${DATABASE_URL:-$$(.ci/postgres hookline)}"; \
	./hookline migrate; \
	mkdir -p .hookline; \
	[ -s "$$keys" ] || (umask 077; ./hookline merchant create --name "Demo merchant" > "$$keys"); \
	echo; echo "Demo merchant (kept in $$keys):"; cat "$$keys"; echo; \
	case "$$keys" in *-local.json) echo "Operator commands run from this directory use this database: ./hookline endpoints list --failing"; echo;; esac; \
	exec ./hookline serve

# The whole suite, with the race detector, against a real Postgres; the
# dashboard's test drives Debian's headless Chromium, installed when missing.
test:
	@set -e; \
	if ! command -v chromium >/dev/null; then \
		echo "installing Debian's chromium for the dashboard's browser test" >&2; \
		apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2; \
	fi; \
	url="$${DATABASE_URL:-$$(.ci/postgres hookline_test)}"; \
	TEST_DATABASE_URL="$$url" $(GO) test -race -count=1 ./...
	@$(MAKE) --no-print-directory chaos

# The fault tests: real hookline processes killed (-9), stopped (SIGTERM) and
# run side by side, and Postgres stopped under load; no acknowledged event
# may be lost.
chaos:
	@set -e; \
	url="$${DATABASE_URL:-$$(.ci/postgres hookline_test)}"; \
	TEST_DATABASE_URL="$$url" $(GO) test -tags chaos -count=1 -timeout 15m -run Chaos -v ./cmd/hookline

# Each fuzz target for FUZZTIME (their seed corpora run in every `make test`).
FUZZTIME ?= 30s
fuzz:
	$(GO) test ./api -run '^$$' -fuzz FuzzDecodeRequests -fuzztime $(FUZZTIME)
	$(GO) test ./delivery -run '^$$' -fuzz FuzzCheckURL -fuzztime $(FUZZTIME)

# The benchmark: hookline as a separate process under load (see
# cmd/hookline-bench); it prints its figures and a summary line.
bench: build
	@set -e; \
	url="$${DATABASE_URL:-$$(.ci/postgres hookline_bench)}"; \
	$(GO) build -o hookline-bench ./cmd/hookline-bench; \
	DATABASE_URL="$$url" ./hookline-bench -hookline ./hookline

STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
# Redocly's linter of OpenAPI documents, from the npm registry at this version
# (npx caches it under .hookline/, which git ignores). The pin fixes only this
# top-level package: npx resolves its dependencies afresh within their semver
# ranges, so a lint run may see newer transitive versions (no lockfile). The
# pin must stay: later @redocly/cli releases require Node.js 22.12 or later,
# and the machines that run make lint have Node.js 20.
REDOCLY ?= @redocly/cli@2.77.0

# The generated code: api/client, the typed client of schema/openapi.yaml.
generate:
	$(GO) generate ./api/client

lint:
	@test -z "$$(gofmt -l .)" || { gofmt -l .; echo "gofmt: the files above need formatting"; exit 1; }
	$(GO) vet ./...
	$(GO) vet -tags chaos ./cmd/hookline
	$(GO) run $(STATICCHECK) ./...
	$(GO) run $(STATICCHECK) -tags chaos ./cmd/hookline
	npm_config_cache="$(CURDIR)/.hookline/npm" REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true \
		npx --yes $(REDOCLY) lint --config schema/redocly.yaml schema/openapi.yaml
	@$(MAKE) --no-print-directory generate
	@git diff --exit-code --stat -- api/client || { echo "api/client is not what schema/openapi.yaml generates: run make generate and commit it"; exit 1; }

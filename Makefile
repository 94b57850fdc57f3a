# Teu: `make run` sets everything up and runs a first container; `make test` runs the whole suite.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
TEU := $(VENV)/bin/teu
IMAGE_TAR := build/busybox.tar
PYTEST := $(VENV)/bin/pytest -p no:cacheprovider

.PHONY: run start stop deps test-deps venv protos check-protos image image-debian lint test unit integration bench soak cri-conformance certs clean

run: start
	@$(TEU) run --rm busybox echo "Hello from Teu: a process manager with superpowers."

start: deps venv $(IMAGE_TAR)
	@scripts/engine.sh start
	@$(TEU) image inspect busybox >/dev/null 2>&1 || \
		$(TEU) import -c 'CMD ["sh"]' $(IMAGE_TAR) busybox

stop:
	@scripts/engine.sh stop

deps:
	@scripts/install-deps.sh

venv:
	@scripts/setup-venv.sh

protos: venv
	scripts/gen-protos.sh

# Regenerates the stubs into a temp dir and fails if they differ from the committed ones.
check-protos: venv
	@tmp=$$(mktemp -d) && scripts/gen-protos.sh $$tmp >/dev/null 2>&1 && \
	  for f in $$(cd $$tmp && find teu_api -type f); do \
	    cmp -s $$tmp/$$f api/python/$$f || { echo "generated $$f is stale: run make protos"; rm -rf $$tmp; exit 1; }; \
	  done; rm -rf $$tmp; echo "generated stubs up to date"

$(IMAGE_TAR): scripts/build-busybox-image.sh
	@mkdir -p build && scripts/build-busybox-image.sh $@

image: deps $(IMAGE_TAR)

# A real payload beside busybox: Debian 12 with python3 (debootstrap from the Debian mirror), as `debian`.
build/debian.tar: scripts/build-debian-image.sh
	@mkdir -p build && scripts/build-debian-image.sh $@

image-debian: start build/debian.tar
	@$(TEU) image inspect debian >/dev/null 2>&1 || $(TEU) import -c 'CMD ["bash"]' build/debian.tar debian

lint: venv
	$(VENV)/bin/buf lint protos
	$(VENV)/bin/ruff check api clients services tests bench
	$(VENV)/bin/ruff format --check api clients services tests bench
	$(VENV)/bin/mypy

unit: venv
	$(PYTEST) api/python/tests services/*/tests clients/python/tests bench/tests -q

integration: deps venv $(IMAGE_TAR) $(NODE_DEPS)
	$(PYTEST) tests/integration tests/security -q

# The Node.js client's packages (@grpc/grpc-js from the npm registry, pinned by its lock file), for the
# test that drives a private engine with it.
NODE_DEPS := clients/node/node_modules/.package-lock.json
$(NODE_DEPS): clients/node/package-lock.json
	@command -v npm >/dev/null || scripts/install-deps.sh nodejs npm
	@cd clients/node && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# Test-only host packages: docker-registry (pull/push on 127.0.0.1), podman and skopeo (image interchange),
# chromium and its driver, firefox-esr (the web page, end to end).
test-deps:
	@scripts/install-deps.sh docker-registry podman skopeo prometheus docker.io docker-compose chromium chromium-driver firefox-esr

test: deps test-deps venv $(IMAGE_TAR) $(NODE_DEPS) check-protos
	$(VENV)/bin/buf lint protos
	$(VENV)/bin/ruff check api clients services tests bench
	$(VENV)/bin/ruff format --check api clients services tests bench
	$(VENV)/bin/mypy
	$(PYTEST) api/python/tests services/*/tests clients/python/tests bench/tests tests/integration tests/security -q

# Side by side with podman and the raw OCI runtimes (QUICK=1: about 2 minutes).
bench: deps venv $(IMAGE_TAR)
	@scripts/install-deps.sh podman docker.io catatonit
	@$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements-bench.txt
	$(PY) bench/run.py $(if $(QUICK),--quick)

# 30 minutes of mixed load on a private engine, a random service SIGKILLed every minute, then a leak
# audit that must read zero (MINUTES=5 for a shorter one). Not part of `make test`.
soak: deps venv $(IMAGE_TAR)
	$(PY) bench/soak.py --minutes $(or $(MINUTES),30)

# critest, the Kubernetes CRI conformance suite, against a private engine in a network namespace of its
# own (critest on PATH or in TEU_CRI_TOOLS; FOCUS=regex to run some specs). Prints its summary.
cri-conformance: deps venv $(IMAGE_TAR)
	$(PY) scripts/cri_conformance.py $(if $(FOCUS),--focus '$(FOCUS)')

# Development CA, gateway certificate (127.0.0.1, localhost) and admin/operator/viewer client certs
# in build/certs, for `teu-engine --tls-listen` and `teu -H tcp://...` (TEU_CERT_PATH=build/certs/<role>).
certs:
	@scripts/make-certs.sh build/certs

clean:
	rm -rf build

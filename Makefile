# Moorage — see README.md. Everything runs as root on Debian 12.
SHELL := /bin/bash
PYTHON ?= /usr/bin/python3
VENV := .venv
PY := $(VENV)/bin/python
APT_PACKAGES := etcd-server etcd-client busybox-static runc crun iproute2 python3-venv ca-certificates docker-registry skopeo umoci nftables \
  libseccomp2 gcc libc6-dev
DEMO_DIR ?= /run/moorage-demo

.PHONY: deps apt-deps venv protos test demo demo-down bench bench-deps conformance clean

deps: apt-deps venv

apt-deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "apt: installing$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

protos: venv
	$(PY) -m grpc_tools.protoc -Iprotos --python_out=. --grpc_python_out=. --pyi_out=. protos/moorage/v1/*.proto

test: deps
	$(PY) -m pytest -q -p no:cacheprovider

demo: deps
	$(PY) -m moorage.demo up --dir $(DEMO_DIR)

demo-down: venv
	$(PY) -m moorage.demo down --dir $(DEMO_DIR)

# Only the benchmarks need these (bench/run.py's anchors); `make deps`, and so `make test`, never
# install them. policy-rc.d: the install must not start a system dockerd (bench/run.py starts its own).
BENCH_APT_PACKAGES := podman netavark docker.io

bench-deps:
	@guard=""; if [ ! -e /usr/sbin/policy-rc.d ]; then \
	  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && guard=1; \
	fi; \
	$(MAKE) --no-print-directory apt-deps APT_PACKAGES="$(BENCH_APT_PACKAGES)"; rc=$$?; \
	if [ -n "$$guard" ]; then rm -f /usr/sbin/policy-rc.d; fi; exit $$rc

bench: deps bench-deps
	$(PY) -m bench $(BENCH)

# The OCI runtime validation suite against moor-runtime, runc and crun (bench/conformance.py);
# Go is needed only here. CONFORMANCE_SRC= names another tarball or an unpacked tree.
conformance: deps
	@$(MAKE) --no-print-directory apt-deps APT_PACKAGES="golang-go"
	$(PY) -m bench conformance

clean: demo-down
	rm -rf $(VENV)

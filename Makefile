# pyminidocker: build, install, test. Run as root for install/test/bench.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip

APT_PACKAGES = libarchive-dev libssl-dev gcc \
	docker-registry skopeo busybox-static apache2-utils zstd \
	iproute2 iptables umoci libarchive-tools crun runc debootstrap
PY_PACKAGES = cffi requests libarchive-c pyroute2 setuptools wheel pytest pyjwt cryptography

.PHONY: all build dev install deps test unit integration lint bench demo clean

all: build

# Build the C modules and the monitor in place (pyminidocker/_pmd*.so, pyminidocker/pmd-monitor),
# and byte-compile the package: the start path must not pay for compiling Python
# (PYTHONDONTWRITEBYTECODE would make every run do it; `pip install` compiles too).
build:
	$(PYTHON) setup.py -q build_ext --inplace
	$(PYTHON) -m compileall -q pyminidocker

dev: build

PREFIX ?= /usr/local

# pip's console script, then our launcher over it (python -S: see pyminidocker/launcher.py).
install:
	$(PIP) install --no-build-isolation .
	cd / && $(PYTHON) -m pyminidocker.launcher $(PREFIX)/bin/pyminidocker

deps:
	apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(APT_PACKAGES)
	$(PIP) install -q $(PY_PACKAGES)

test: build
	$(PYTHON) -m pytest -q tests

unit: build
	$(PYTHON) -m pytest -q tests/unit

integration: build
	$(PYTHON) -m pytest -q tests/integration

lint:
	$(PYTHON) -m ruff check pyminidocker tests bench csrc
	$(PYTHON) -m mypy pyminidocker

bench: build
	$(PYTHON) bench/pull.py
	$(PYTHON) bench/start.py

demo: build
	$(PYTHON) bench/demo.py

clean:
	rm -rf build pyminidocker/_pmd.* pyminidocker/_pmd_extract.* pyminidocker/pmd-monitor *.egg-info .pytest_cache

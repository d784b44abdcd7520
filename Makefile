# pyminidocker: build, install, test. Run as root for deps/install/test/bench.
#
# Python packages live in a virtual environment this Makefile owns (VENV), never in the
# system Python: Debian's is externally managed (PEP 668) and has no pip. `make deps` makes it
# from the system's python3 (HOST_PYTHON): /usr/bin/python3 where there is one, even when
# another python3 (pyenv's, a venv's) comes first on the PATH, because the distribution's is
# built with PGO and LTO and starts 3-8 ms faster, which every container start and every call
# of pyminidocker-runc pays; every other target runs with its interpreter.
HOST_PYTHON ?= $(firstword $(wildcard /usr/bin/python3) python3)
VENV ?= $(CURDIR)/.venv
PYTHON = $(VENV)/bin/python
PIP = $(PYTHON) -m pip

APT_PACKAGES = python3 python3-venv python3-dev gcc libffi-dev pkg-config \
	libarchive-dev libssl-dev ca-certificates \
	docker-registry skopeo busybox-static apache2-utils zstd \
	iproute2 iptables procps e2fsprogs umoci libarchive-tools crun runc debootstrap tini man-db \
	docker.io docker-compose python3-docker containerd podman aardvark-dns \
	qemu-system-x86
PY_PACKAGES = cffi requests libarchive-c pyroute2 'setuptools>=77' wheel pytest pyjwt cryptography matplotlib \
	aiohttp docker grpcio
LINT_PACKAGES = ruff mypy
# The PY_PACKAGES a venv was last brought to: `make` updates an older clone's venv when the list
# changes (a raised minimum, such as setuptools' for pyproject.toml's SPDX license), where
# otherwise only `make deps` would.
PY_STAMP = $(VENV)/pyminidocker-packages
PY_LIST = printf '%s\n' $(PY_PACKAGES)

.PHONY: all build dev install uninstall install-docs uninstall-docs deps venv test unit integration lint bench demo clean

all: build

# Build the C modules and the monitor in place (pyminidocker/_pmd*.so, pyminidocker/pmd-monitor),
# and byte-compile the package: the start path must not pay for compiling Python
# (PYTHONDONTWRITEBYTECODE would make every run do it; `pip install` compiles too), nor for
# finding each module (the code cache: see pyminidocker/codecache.py).
build: $(PYTHON)
	@$(PY_LIST) | cmp -s - $(PY_STAMP) || $(MAKE) -s venv
	$(PYTHON) setup.py -q build_ext --inplace
	$(PYTHON) -m compileall -q pyminidocker
	$(PYTHON) -m pyminidocker.codecache > /dev/null

dev: build

PREFIX ?= /usr/local

# The package goes into the venv; the command on root's PATH is our launcher over the venv's
# interpreter (python -S: see pyminidocker/launcher.py), so `sudo pyminidocker` finds it;
# pyminidocker-runc is the C front (pmd-runc) over such a launcher, pyminidocker-runc.py.
install: build install-docs
	$(PIP) install -q --no-build-isolation .
	cd / && $(PYTHON) -m pyminidocker.codecache > /dev/null
	mkdir -p $(PREFIX)/bin
	cd / && $(PYTHON) -m pyminidocker.launcher $(PREFIX)/bin/pyminidocker
	cd / && $(PYTHON) -m pyminidocker.launcher $(PREFIX)/bin/pyminidocker-runc pyminidocker.oci.main

uninstall: uninstall-docs
	rm -f $(PREFIX)/bin/pyminidocker $(PREFIX)/bin/pyminidocker-runc $(PREFIX)/bin/pyminidocker-runc.py
	-cd / && $(PYTHON) -m pyminidocker.codecache --remove
	-$(PIP) uninstall -q -y pyminidocker

# bash completion and the man page, generated from the CLI's argument tables
# (pyminidocker/cli/reference.py, in cli/wording.py's words); bash-completion and man-db look
# in these by default.
BASH_COMPLETION_DIR ?= $(PREFIX)/share/bash-completion/completions
MAN1_DIR ?= $(PREFIX)/share/man/man1

install-docs: build
	mkdir -p $(BASH_COMPLETION_DIR) $(MAN1_DIR)
	$(PYTHON) -m pyminidocker.cli.reference completion > $(BASH_COMPLETION_DIR)/pyminidocker
	$(PYTHON) -m pyminidocker.cli.reference man > $(MAN1_DIR)/pyminidocker.1

uninstall-docs:
	rm -f $(BASH_COMPLETION_DIR)/pyminidocker $(MAN1_DIR)/pyminidocker.1

# The system packages, then the venv and the Python packages in it.
deps:
	apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(APT_PACKAGES)
	$(MAKE) venv

venv: $(PYTHON)
	$(PIP) install -q $(PY_PACKAGES)
	$(PY_LIST) > $(PY_STAMP)

# With the Python packages: `make` on a fresh clone (after the apt packages) builds at once.
$(PYTHON):
	$(HOST_PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(MAKE) -s venv

# As root with qemu (make deps installs it) this includes tests/vm: the cgroup, container and
# network integration tests and 2 power-cut rounds inside a pure cgroup v2 VM (qemu under TCG;
# minutes, see tests/vm). `PMD_VM_TESTS=0 make test` skips them.
test: build
	$(PYTHON) -m pytest -q tests

unit: build
	$(PYTHON) -m pytest -q tests/unit

integration: build
	$(PYTHON) -m pytest -q tests/integration

lint: $(PYTHON)
	$(PIP) install -q $(LINT_PACKAGES)
	$(PYTHON) -m ruff check pyminidocker tests bench csrc examples
	$(PYTHON) -m mypy pyminidocker

bench: build
	$(PYTHON) bench/pull.py
	$(PYTHON) bench/start.py

demo: build
	$(PYTHON) bench/demo.py

clean:
	rm -rf build .venv pyminidocker/_pmd.* pyminidocker/_pmd_extract.* pyminidocker/pmd-monitor pyminidocker/pmd-runc *.egg-info .pytest_cache

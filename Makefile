# The README's two commands: `make demo` and `make test`. Each installs what
# it needs (Debian packages, a virtualenv in .venv) before it runs.
# `make matrix` runs the OpenStack release matrix (tox, tools/matrix.py).
PYTHON ?= python3
VENV ?= .venv
STAMP := $(VENV)/.installed

VERSION := $(shell sed -n 's/^version *= *//p' setup.cfg)
# `make image`: the daemon's container image. Another base or engine settings:
#   make image BASE_IMAGE=registry.example.com/python:3.11-slim DOCKER_BUILD_FLAGS=--pull
BASE_IMAGE ?= python:3.11-slim
IMAGE ?= kafka-bridge:$(VERSION)
DOCKER_BUILD_FLAGS ?=

.PHONY: demo test unit functional lint matrix benchmark image clean

demo: $(STAMP)
	$(VENV)/bin/python tools/demo.py

test: $(STAMP)
	$(VENV)/bin/python -m pytest tests

unit: $(STAMP)
	$(VENV)/bin/python -m pytest tests/unit

functional: $(STAMP)
	$(VENV)/bin/python -m pytest tests/functional

# flake8, mypy on the package, and the docs checks (links, option tables): what tox's
# pep8 and docs environments run, without tox.
lint: $(STAMP)
	$(VENV)/bin/pip install -q flake8 mypy
	$(VENV)/bin/flake8
	$(VENV)/bin/mypy --ignore-missing-imports kafka_bridge
	$(VENV)/bin/python tools/check_docs.py
	$(VENV)/bin/python tools/gen_option_docs.py --check

matrix: $(STAMP)
	$(VENV)/bin/pip install -q 'tox>=4'
	$(VENV)/bin/python tools/matrix.py

benchmark: $(STAMP)
	$(VENV)/bin/pip install -q -e '.[benchmark]'
	$(VENV)/bin/python tools/benchmark.py

image:
	docker build $(DOCKER_BUILD_FLAGS) --build-arg BASE_IMAGE=$(BASE_IMAGE) \
	    --build-arg VERSION=$(VERSION) -t $(IMAGE) .

$(STAMP): setup.cfg pyproject.toml devenv/setup.cfg tools/install-system-packages.sh
	tools/install-system-packages.sh
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test,compression]' -e ./devenv
	touch $(STAMP)

clean:
	rm -rf $(VENV) .tox .pytest_cache build *.egg-info

# The README's two commands: `make demo` and `make test`. Each installs what
# it needs (Debian packages, a virtualenv in .venv) before it runs.
PYTHON ?= python3
VENV ?= .venv
STAMP := $(VENV)/.installed

.PHONY: demo test unit functional lint benchmark clean

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

benchmark: $(STAMP)
	$(VENV)/bin/pip install -q -e '.[benchmark]'
	$(VENV)/bin/python tools/benchmark.py

$(STAMP): setup.cfg pyproject.toml devenv/setup.cfg tools/install-system-packages.sh
	tools/install-system-packages.sh
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test,compression]' -e ./devenv
	touch $(STAMP)

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info

# The targets the README, CI and developers all run.  Each creates what it
# needs: the virtualenv (.venv), the pinned packages (constraints.txt) and,
# for browser tests, Debian's chromium.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint typecheck unit bench serve browser live-servers soak-browser clean plotly-partial

# setuptools warns about every editable install, and pip about package locations of the
# machine's own configuration: nothing a user can act on (errors still show)
PIP := PYTHONWARNINGS=ignore::UserWarning $(BIN)/python -m pip --disable-pip-version-check

$(STAMP): pyproject.toml constraints.txt
	@echo "installing whatchanged and its pinned packages into $(VENV) (first run only)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(PIP) install -qq --upgrade pip
	@$(PIP) install -qq -c constraints.txt -e '.[dev]'
	@# bytecode now, as a non-editable install does: every new process (a CLI question) would
	@# compile the package again, about 0.15 s, where PYTHONDONTWRITEBYTECODE is set
	@$(BIN)/python -m compileall -q -j 0 ingest engine present api dashboards data >/dev/null
	@touch $@

browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian chromium for the browser tests"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; }

# the live tests start Debian's Prometheus (with promtool) and Alertmanager on loopback
live-servers:
	@command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 \
	  && command -v prometheus-alertmanager >/dev/null 2>&1 || { \
	  echo "installing Debian prometheus and prometheus-alertmanager for the live tests"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq prometheus prometheus-alertmanager >/dev/null; }

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy sees the installed layout (whatchanged.engine …) through a tree of links, so that
# imports between layers are checked and the strict overrides for engine and ingest apply.
MYPY_SRC := $(VENV)/mypy-src/whatchanged
typecheck: $(STAMP)
	@mkdir -p $(MYPY_SRC) && for d in ingest engine present api dashboards data; do ln -sfn $(CURDIR)/$$d $(MYPY_SRC)/$$d; done
	cd $(VENV)/mypy-src && $(CURDIR)/$(BIN)/mypy --config-file $(CURDIR)/pyproject.toml --cache-dir $(CURDIR)/.mypy_cache -p whatchanged

unit: $(STAMP) browser live-servers
	$(BIN)/python -m pytest -q

test: lint typecheck unit

# The browser tests 20 times in a row, each run in a new random order: a race shows up here.
SOAK_RUNS ?= 20
soak-browser: $(STAMP) browser
	@for i in $$(seq 1 $(SOAK_RUNS)); do \
	  $(BIN)/python -m pytest -q -p no:cacheprovider -m browser tests/dashboards >/tmp/whatchanged-soak.log 2>&1 \
	    && echo "run $$i/$(SOAK_RUNS): passed" \
	    || { echo "run $$i/$(SOAK_RUNS): FAILED"; tail -30 /tmp/whatchanged-soak.log; exit 1; }; \
	done

demo: $(STAMP)
	$(BIN)/whatchanged demo

serve: $(STAMP)
	$(BIN)/whatchanged serve

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

# Maintainers, after upgrading plotly: refresh the vendored plotly.js cartesian bundle of the
# dashboards (dashboards/static/) to the plotly.js version the installed plotly package embeds,
# from the npm registry, and commit it.  Not needed to build or test: the file is in git, and the
# pages fall back to the plotly package's full bundle when its version does not match.
plotly-partial: $(STAMP)
	@v=$$($(BIN)/python -c 'from plotly.offline import get_plotlyjs_version as v; print(v())') && \
	tmp=$$(mktemp -d) && \
	(cd $$tmp && npm pack --silent plotly.js-cartesian-dist-min@$$v >/dev/null && tar xzf plotly.js-cartesian-dist-min-$$v.tgz) && \
	cp $$tmp/package/plotly-cartesian.min.js dashboards/static/plotly-cartesian.min.js && \
	cp $$tmp/package/LICENSE dashboards/static/plotly-cartesian.LICENSE && \
	rm -rf $$tmp && echo "dashboards/static: plotly.js cartesian bundle $$v"

clean:
	rm -rf $(VENV) data/warehouse tests/artifacts .pytest_cache .mypy_cache .ruff_cache

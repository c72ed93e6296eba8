# make run   install, migrate, seed the demo province, serve on 127.0.0.1:5000
# make test  install with dev extras and run the tests (SQLite; PostgreSQL too
#            when CARESERVICE_TEST_DATABASE_URL is set, as .ci/run does)

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
FLASK  := $(BIN)/flask --app careservice

.PHONY: run test install install-dev lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --editable .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --editable '.[dev]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

run: install
	$(FLASK) db upgrade
	$(FLASK) demo seed
	@echo "Serving careservice on http://127.0.0.1:5000 (scheduler in-process, SMS printed to this console; Ctrl-C stops)"
	CARESERVICE_SMS_BACKEND=$${CARESERVICE_SMS_BACKEND:-console} \
	CARESERVICE_RUN_SCHEDULER=$${CARESERVICE_RUN_SCHEDULER:-1} \
	$(FLASK) run --host 127.0.0.1 --port 5000

test: install-dev
	$(BIN)/python -m pytest
	@if [ -z "$$CARESERVICE_TEST_DATABASE_URL" ]; then \
	  echo "PostgreSQL: skipped (the suite ran on SQLite; .ci/run or CARESERVICE_TEST_DATABASE_URL runs it on PostgreSQL)"; \
	fi

lint: install-dev
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) instance .pytest_cache .ruff_cache

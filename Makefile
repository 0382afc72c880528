# The two commands for a fresh machine: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
REQUIREMENTS := requirements.txt requirements-web.txt requirements-ml.txt requirements-dev.txt

.PHONY: run test lint check messages bench-patients clean

$(STAMP): $(REQUIREMENTS)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	@touch $@

## run: install, migrate, load demo data, print the admin login, start web + worker + beat
run: $(STAMP)
	$(BIN)/python manage.py migrate --no-input
	$(BIN)/python manage.py bootstrap
	$(BIN)/python -m mis.launcher

## test: the whole test suite (SQLite by default; DATABASE_URL/CELERY_BROKER_URL for the real ones)
test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

check: lint
	$(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/lint-imports

messages: $(STAMP)
	$(BIN)/python manage.py makemessages -l ru --no-obsolete --no-location --ignore=.venv --ignore=var
	$(BIN)/python manage.py compilemessages -l ru --ignore=.venv

bench-patients: $(STAMP)
	$(BIN)/python bench/patients_search.py

clean:
	rm -rf var

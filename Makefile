# holdspace: the two quick-start commands and friends.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: install test demo run clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Reinstall only when requirements.txt changes.
$(STAMP): requirements.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt
	touch $(STAMP)

install: $(STAMP)

# .ci/setup installs (or names) the system packages the suite needs: chromium, PostgreSQL.
# The test session starts and stops its own Redis, Postgres, S3 and SMTP stand-ins.
test: install
	bash .ci/setup
	$(BIN)/python -m pytest -q -n 2 $(PYTEST_ARGS)

demo: install
	$(BIN)/flask --app app demo

run: install
	$(BIN)/flask --app app init-db
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(BIN)/honcho start

# Stop the embedded Redis first: its daemon would outlive the socket and pid file it keeps in var/.
clean:
	-[ -f var/redis.pid ] && kill "$$(cat var/redis.pid)"
	rm -rf var .pytest_cache

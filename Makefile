# maild — the two commands a newcomer runs:
#   make run    start maild on its embedded default (SQLite + spool under ./var,
#               LMTP 127.0.0.1:2424, SMTP 127.0.0.1:2525, outbound mail to ./var/outbound Maildir)
#   make test   install what the tests need and run them
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test bench clean

$(BIN)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

var/maild.yaml:
	mkdir -p var
	cp deploy/dev/maild.yaml deploy/dev/rules.yaml var/

run: $(BIN)/.installed var/maild.yaml
	$(BIN)/maild -c var/maild.yaml init
	$(BIN)/maild -c var/maild.yaml serve

test: $(BIN)/.installed
	scripts/test-services
	$(BIN)/pytest

bench: $(BIN)/.installed
	$(BIN)/python bench/ingest.py

clean:
	rm -rf var build *.egg-info

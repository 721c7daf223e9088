# Two commands on a fresh machine (Python >= 3.11):
#   make run    create .venv, install wsim from the lock, run the main job on the embedded default scenario
#   make test   create .venv, install wsim with its test extra from the lock, run the test suite
# Every install is pinned by constraints.txt (the lock); a changed lock or pyproject.toml rebuilds .venv
# from scratch, so nothing from an earlier install or from the machine's own site-packages is used.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
LOCK   := constraints.txt
STAMP  := $(VENV)/.installed
OUT    ?= runs/default

.PHONY: run test lint bench clean lock

$(STAMP): pyproject.toml $(LOCK)
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -c $(LOCK) --upgrade pip
	$(BIN)/pip install -q -c $(LOCK) -e '.[test]'
	$(BIN)/pip check
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/wsim run --out $(OUT)

test: $(STAMP)
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Re-resolve the lock from pyproject.toml's ranges in a scratch venv (newest versions this pip's
# configuration allows); run `make clean test` afterwards and commit constraints.txt only if it passes.
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install -q --upgrade pip
	.lock-venv/bin/pip install -q '.[test]'
	{ sed -n '/^#/p' $(LOCK); .lock-venv/bin/pip freeze --all --exclude-editable | grep -vi '^wsim'; } > $(LOCK).new
	mv $(LOCK).new $(LOCK)
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) runs .pytest_cache

# Everything goes through the project's own virtual environment (.venv).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 8888
TOKEN  ?= $(shell $(PYTHON) -c "import secrets; print(secrets.token_hex(16))")

.PHONY: setup system-packages test bench lab clean

setup: system-packages $(VENV)/.installed

# Python packages, pinned in requirements.txt; reinstalled when it changes.
$(VENV)/.installed: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	# the project folder on the venv's path, so notebook kernels import nsvm_model and widgets
	echo "$(CURDIR)" > "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/nsvm-suite.pth"
	touch $@

# Debian packages from apt.txt (graphviz), installed when missing and we are root.
system-packages:
	@missing=""; for p in $$(cat apt.txt); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "missing Debian packages:$$missing (run as root, or: sudo apt-get install$$missing)"; fi; \
	fi

test: setup
	$(BIN)/python -m pytest tests

bench: setup
	$(BIN)/python benchmarks/run.py

lab: setup
	@echo "JupyterLab on http://127.0.0.1:$(PORT)/lab/tree/00_start_here.ipynb?token=$(TOKEN)"
	$(BIN)/python -m jupyterlab --no-browser --ip=127.0.0.1 --port=$(PORT) \
	  --ServerApp.root_dir=notebooks --IdentityProvider.token=$(TOKEN) \
	  --LabApp.default_url=/lab/tree/00_start_here.ipynb

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis

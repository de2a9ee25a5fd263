# Everything goes through the project's own virtual environment (.venv).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 8888

.PHONY: setup system-packages test bench lab html slides layouts lite clean
VENDOR := build/vendor
HTML_MANAGER := @jupyter-widgets/html-manager@1.0.15
REQUIREJS := requirejs@2.3.8
REVEAL := reveal.js@4.0.2
JQUERY := jquery@3.7.1
SLIDE_NOTEBOOKS := 02_successful_vmrun 04_cr3_loading_order 06_nvmx_beside_nsvm 07_reviewing_the_2026_proposal

setup: system-packages $(VENV)/.installed

# Python packages, pinned in requirements.txt; reinstalled when it changes.
$(VENV)/.installed: requirements.txt pyproject.toml exporting/lab-overrides.json
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	# the suite itself, editable: notebook kernels import nsvm_model and widgets from this folder
	rm -f "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/nsvm-suite.pth"
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	# JupyterLab saves the widgets' state with the notebook, so a saved notebook reopens with its
	# explorers drawn (they step with no kernel) instead of "model not found"
	mkdir -p $(VENV)/share/jupyter/lab/settings
	cp exporting/lab-overrides.json $(VENV)/share/jupyter/lab/settings/overrides.json
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

# The flow diagrams laid out by dot, shipped in the package for a Python without dot (JupyterLite);
# tests/test_widgets.py fails when they are out of date.
layouts: setup
	$(BIN)/python -c "from widgets import render; render.write_shipped_layouts()"

bench: setup
	$(BIN)/python benchmarks/run.py

# One token, made once and handed to the server in its environment (JUPYTER_TOKEN), so
# it is not on any command line; a busy port stops here instead of moving elsewhere.
lab: setup
	@export JUPYTER_TOKEN="$${JUPYTER_TOKEN:-$$($(BIN)/python -c 'import secrets; print(secrets.token_hex(24))')}"; \
	$(BIN)/python -c 'import socket, sys; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", int(sys.argv[1])))' $(PORT) 2>/dev/null \
	  || { echo "error: port $(PORT) on 127.0.0.1 is busy; pick another, e.g. make lab PORT=8890" >&2; exit 2; }; \
	echo "JupyterLab on http://127.0.0.1:$(PORT)/lab/tree/00_start_here.ipynb?token=$$JUPYTER_TOKEN"; \
	exec $(BIN)/python -m jupyterlab --no-browser --ip=127.0.0.1 --port=$(PORT) --ServerApp.port_retries=0 \
	  --ServerApp.root_dir=notebooks --LabApp.default_url=/lab/tree/00_start_here.ipynb \
	  $(if $(filter 0,$(shell id -u)),--allow-root)

# The widget renderer, require.js, reveal.js and jQuery, taken from the npm registry once.
# Each site gets only the files its pages load: no archive, no source map.
$(VENDOR)/.done:
	mkdir -p $(VENDOR)
	cd $(VENDOR) && npm pack --silent $(HTML_MANAGER) $(REQUIREJS) $(REVEAL) $(JQUERY) >/dev/null
	cd $(VENDOR) && for t in *.tgz; do d=$${t%.tgz}; mkdir -p $$d && tar xzf $$t -C $$d; done
	touch $@

# The renderer looks for its icon fonts in @jupyter-widgets/ beside the page; browsers take
# the first format they know, woff2, so only those ship.  The stage's front end is anywidget's
# AMD bundle, copied from the installed package (the templates point require.js at it).
WIDGETS_DIST := $(VENDOR)/jupyter-widgets-html-manager-1.0.15/package/dist
define site_assets
	mkdir -p $(1)/@jupyter-widgets $(1)/vendor
	cp $(WIDGETS_DIST)/*.woff2 $(1)/@jupyter-widgets/
	cp $(WIDGETS_DIST)/embed-amd.js $(VENDOR)/requirejs-2.3.8/package/require.js $(1)/vendor/
	cp "$$($(BIN)/python -c 'import anywidget, pathlib; print(pathlib.Path(anywidget.__file__).parent / "nbextension" / "index.js")')" $(1)/vendor/anywidget.js
endef
EXPORT_FLAGS := --HTMLExporter.widget_renderer_url=vendor/embed-amd.js \
	--HTMLExporter.require_js_url=vendor/require.js

# A static site: every notebook executed, its precomputed steppers stepping with no kernel,
# and no request leaving the folder (exporting/offline.html.j2 drops MathJax and mermaid).
html: setup $(VENDOR)/.done
	rm -rf build/html && mkdir -p build/html
	$(call site_assets,build/html)
	$(BIN)/python -m jupyter nbconvert --to html --execute --output-dir build/html \
	  --template-file exporting/offline.html.j2 $(EXPORT_FLAGS) notebooks/*.ipynb
	@echo "open build/html/00_start_here.html"

# Slides for a tutorial (02, 04, 06, 07), 1280x720 like the projector, no prompts: reveal.js,
# its white theme (local fonts) and jQuery
# served from the deck's folder.
REVEAL_DIST := $(VENDOR)/reveal.js-4.0.2/package/dist
slides: setup $(VENDOR)/.done
	rm -rf build/slides && mkdir -p build/slides/vendor/reveal.js/dist/theme
	$(call site_assets,build/slides)
	cp $(REVEAL_DIST)/reveal.js $(REVEAL_DIST)/reveal.css build/slides/vendor/reveal.js/dist/
	cp -r $(REVEAL_DIST)/theme/white.css $(REVEAL_DIST)/theme/fonts build/slides/vendor/reveal.js/dist/theme/
	mkdir -p build/slides/vendor/reveal.js/plugin
	cp -r $(VENDOR)/reveal.js-4.0.2/package/plugin/notes build/slides/vendor/reveal.js/plugin/
	cp $(VENDOR)/jquery-3.7.1/package/dist/jquery.min.js build/slides/vendor/
	$(BIN)/python -m jupyter nbconvert --to slides --execute --output-dir build/slides \
	  --template-file exporting/offline.slides.html.j2 $(EXPORT_FLAGS) \
	  --SlidesExporter.reveal_url_prefix=vendor/reveal.js --SlidesExporter.reveal_theme=white \
	  --SlidesExporter.jquery_url=vendor/jquery.min.js --SlidesExporter.reveal_width=1280 \
	  --SlidesExporter.reveal_height=720 --no-prompt \
	  $(foreach n,$(SLIDE_NOTEBOOKS),notebooks/$(n).ipynb)

# JupyterLite: the notebooks with a Python kernel that runs in the browser (Pyodide), built from
# PyPI and npm only and served from its own folder, no CDN.  The Pyodide runtime comes from npm;
# the kernel's packages are pure-Python wheels (lite/requirements.txt, the suite's own wheel and
# the four the kernel extension ships), listed in a lock that names only them (lite/make_pyodide.py).
LITE_VENV := build/lite-venv
PYODIDE := pyodide@314.0.8
LITE_SRC := build/lite-src
KERNEL_WHEELS := $(LITE_VENV)/share/jupyter/labextensions/@jupyterlite/pyodide-kernel-extension/static/pypi
lite: setup
	test -x $(LITE_VENV)/bin/python || $(PYTHON) -m venv $(LITE_VENV)
	$(LITE_VENV)/bin/pip install --quiet --disable-pip-version-check -r lite/build-requirements.txt
	mkdir -p build/npm
	test -d build/npm/package || (cd build/npm && npm pack --silent $(PYODIDE) >/dev/null && tar xzf pyodide-*.tgz)
	rm -rf $(LITE_SRC) build/lite build/lite-wheels && mkdir -p $(LITE_SRC)/files build/lite-wheels
	$(BIN)/pip download --quiet --disable-pip-version-check --no-deps --only-binary :all: --platform any \
	  --python-version 3.14 --implementation py --abi none -r lite/requirements.txt -d build/lite-wheels
	$(BIN)/pip wheel --quiet --disable-pip-version-check --no-deps --no-build-isolation -w build/lite-wheels .
	for w in piplite ipykernel pyodide_kernel widgetsnbextension; do cp $(KERNEL_WHEELS)/$$w-*.whl build/lite-wheels/; done
	$(LITE_VENV)/bin/python lite/make_pyodide.py build/npm/package build/lite-wheels $(LITE_SRC)/static/pyodide
	cp lite/jupyter_lite_config.json lite/jupyter-lite.json $(LITE_SRC)/
	cp notebooks/*.ipynb $(LITE_SRC)/files/
	# inside the source folder: doit keeps its state file there, beside what it builds
	cd $(LITE_SRC) && ../lite-venv/bin/jupyter lite build --output-dir ../lite
	@echo "serve it: python3 -m http.server 8000 --bind 127.0.0.1 -d build/lite, then open http://127.0.0.1:8000/lab/index.html"

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build artifacts

# Two commands set everything up on a fresh machine (see README):
#   make demo   generate the sample shop, materialise every asset, push to SendGrid (dry-run without a key)
#   make test   run the whole test suite
VENV := .venv
PY := $(VENV)/bin/python
export DAGSTER_HOME := $(CURDIR)/.dagster_home

.PHONY: demo test ui install dagster-home browser webhook previews

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q uv
	@# Bytecode now: this machine sets PYTHONDONTWRITEBYTECODE, so without it every process compiles its
	@# imports from source again (Great Expectations 11 CPU s instead of 6, the Definitions 8 instead of 5).
	$(VENV)/bin/uv pip install -q --compile-bytecode --python $(PY) -e '.[dev]'
	touch $@

# One run at a time: every run writes the one DuckDB file, which takes one writer; later runs
# (a schedule tick, a push started by the sensor) wait in the queue instead of failing on its lock.
# Run monitoring fails a run whose process died (SIGKILL, OOM, reboot) within a poll interval, so it
# does not hold the one run slot forever; the launcher tells it which run workers are alive
# (lifecycle_assets/run_launcher.py). A dead run is failed, not resumed: rerun it (docs/runbook.md).
dagster-home: install
	@mkdir -p $(DAGSTER_HOME)
	@printf '%s\n' \
	  'nux:' '  enabled: false' 'telemetry:' '  enabled: false' \
	  'concurrency:' '  runs:' '    max_concurrent_runs: 1' \
	  'run_launcher:' '  module: lifecycle_assets.run_launcher' '  class: LocalRunLauncher' \
	  'run_monitoring:' '  enabled: true' '  start_timeout_seconds: 180' '  cancel_timeout_seconds: 180' \
	  '  max_resume_run_attempts: 0' '  poll_interval_seconds: 30' \
	  > $(DAGSTER_HOME)/dagster.yaml
	@# Create the run, event and schedule storage now, once: a daemon, a webserver and CLI launches
	@# started side by side on an empty home would each create it and race on its schema stamp.
	@$(PY) -c 'import dagster, sys; dagster.DagsterInstance.from_config(sys.argv[1]).dispose()' $(DAGSTER_HOME)

demo: install dagster-home
	$(PY) -m lifecycle_assets.demo

# Both cores, one test file per worker (a file's module fixtures are built once): ~10 min instead of ~16.
test: install dagster-home browser
	$(PY) -m pytest -n 2 --dist loadfile

ui: install dagster-home
	$(VENV)/bin/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

browser:
	scripts/install-browser

# SendGrid's Event Webhook receiver (docs/webhook.md); needs SENDGRID_WEBHOOK_PUBLIC_KEY.
WEBHOOK_HOST ?= 127.0.0.1
WEBHOOK_PORT ?= 8025
webhook: install
	$(VENV)/bin/lifecycle-webhook --host $(WEBHOOK_HOST) --port $(WEBHOOK_PORT)

# Every letter type filled with its sample.json: HTML and screenshots at 900 px and 375 px in
# headless chromium, under LIFECYCLE_PREVIEWS_DIR (docs/letters.md). Not part of the push: chromium
# takes a few seconds; the templates asset links the screenshots that still show the current letter.
previews: install browser
	$(PY) -m lifecycle_assets.activation.previews

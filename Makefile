# Two entry points for a fresh machine:  `make demo`  and  `make test`.
SHELL := /bin/bash
VENV  ?= .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# a real Rucio server (and its daemons) for the rucio data manager's tests, in a venv of its own
RUCIO_VENV  ?= .venv-rucio
RUCIO_STAMP := $(RUCIO_VENV)/.installed
# a real PanDA server (panda-server with JEDI, served by gunicorn) for the panda executor's tests
PANDA_VENV  ?= .venv-panda
PANDA_STAMP := $(PANDA_VENV)/.installed

# PyPI's iDDS client packages (and ATLAS's works), which the iDDS compatibility tests run
IDDS_VENV  ?= .venv-idds
IDDS_STAMP := $(IDDS_VENV)/.installed
IDDS_VERSION := 2.6.21
# PyPI's iDDS REST server (same version; idds-prompt is imported by its app), served by
# gunicorn, which tests/idds/test_idds_vs_real.py sends the same client calls as Orchid
IDDS_SERVER_VENV  ?= .venv-iddsserver
IDDS_SERVER_STAMP := $(IDDS_SERVER_VENV)/.installed

.PHONY: demo test lint typecheck unit services chromium slurm clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[all,dev,examples]'
	@# strategy gp (Optuna's GP sampler) needs PyTorch; this machine kind holds its CPU build
	@# (torch 2.13.0, ~20 s, ~900 MB). A plain `pip install torch` elsewhere may fetch a CUDA
	@# build of several GB. Without it the gp contract tests are skipped. ORCHID_NO_TORCH=1 skips.
	@if [ -z "$$ORCHID_NO_TORCH" ]; then $(PY) -m pip install --quiet 'torch==2.13.0' || \
	  echo "PyTorch not installed: strategy gp untested" >&2; fi
	touch $(STAMP)

$(RUCIO_STAMP):
	python3 -m venv $(RUCIO_VENV)
	$(RUCIO_VENV)/bin/python -m pip install --quiet 'rucio==41.5.1' 'psycopg[binary]>=3.1'
	touch $(RUCIO_STAMP)

# PyPI has only panda-server's sdist; its build hook wants a user `atlpan` when it runs as gid 0,
# so the wheel is built under another group. mod-wsgi (Apache) is left out: gunicorn serves it.
$(PANDA_STAMP):
	rm -rf $(PANDA_VENV) && python3 -m venv $(PANDA_VENV)
	$(PANDA_VENV)/bin/python -m pip install --quiet --upgrade pip wheel
	mkdir -p $(PANDA_VENV)/wheels && chmod 777 $(PANDA_VENV)/wheels
	cd $(PANDA_VENV)/wheels && setpriv --regid=nogroup --clear-groups ../bin/python -m pip wheel \
	  --quiet --no-deps --no-cache-dir 'panda-server==1.0.4'
	$(PANDA_VENV)/bin/python -m pip install --quiet --no-deps $(PANDA_VENV)/wheels/panda_server-1.0.4-*.whl
	$(PANDA_VENV)/bin/python -c "import importlib.metadata as m; \
	  print('\n'.join(r for r in m.requires('panda-server') or [] if 'extra ==' not in r \
	  and not r.lower().replace('_', '-').startswith('mod-wsgi')))" > $(PANDA_VENV)/requirements.txt
	$(PANDA_VENV)/bin/python -m pip install --quiet -r $(PANDA_VENV)/requirements.txt \
	  psycopg2-binary gunicorn panda-client
	touch $(PANDA_STAMP)

$(IDDS_STAMP):
	python3 -m venv $(IDDS_VENV)
	$(IDDS_VENV)/bin/python -m pip install --quiet 'idds-client==$(IDDS_VERSION)' \
	  'idds-common==$(IDDS_VERSION)' 'idds-workflow==$(IDDS_VERSION)' 'idds-doma==$(IDDS_VERSION)' \
	  'idds-atlas==$(IDDS_VERSION)'
	touch $(IDDS_STAMP)

$(IDDS_SERVER_STAMP):
	python3 -m venv $(IDDS_SERVER_VENV)
	$(IDDS_SERVER_VENV)/bin/python -m pip install --quiet 'idds-server==$(IDDS_VERSION)' \
	  'idds-prompt==$(IDDS_VERSION)' 'idds-common==$(IDDS_VERSION)' \
	  'idds-workflow==$(IDDS_VERSION)' 'idds-doma==$(IDDS_VERSION)' 'idds-atlas==$(IDDS_VERSION)' \
	  'gunicorn==27.0.1'
	touch $(IDDS_SERVER_STAMP)

## demo: install, then run the Rubin-like example DAG on the embedded default (SQLite + local executor)
demo: $(STAMP)
	$(PY) examples/rubin_dag/generate.py --visits 40 --detectors 20
	$(VENV)/bin/orchid run examples/rubin_dag/workflow.yaml --db .orchid/demo.db

## test: lint, type-check, then every test on SQLite and on the machine's PostgreSQL
test: $(STAMP) $(RUCIO_STAMP) $(PANDA_STAMP) $(IDDS_STAMP) $(IDDS_SERVER_STAMP) services chromium slurm lint typecheck
	$(VENV)/bin/pytest -n 2 --dist loadgroup

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests examples bench
	$(VENV)/bin/ruff format --check src tests examples bench

typecheck: $(STAMP)
	$(VENV)/bin/mypy

## services: start PostgreSQL if it is not running (tests create and drop their own database)
services:
	@bash .ci/services.sh

## chromium: Debian's Chromium for the browser tests (Playwright drives it; it never downloads one)
chromium:
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

## slurm: Debian's slurm-wlm and munge for the Slurm executor's tests (a fixture starts a
## single-node cluster of its own under a temporary folder; nothing runs as a service)
slurm:
	@test -x /usr/sbin/slurmctld && test -x /usr/sbin/slurmd && test -x /usr/sbin/munged \
	  && command -v sbatch >/dev/null || { apt-get update -qq && apt-get install -y -qq \
	  --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null; }

clean:
	rm -rf $(VENV) $(RUCIO_VENV) $(PANDA_VENV) .orchid .mypy_cache .ruff_cache .pytest_cache test-artifacts

	rm -rf $(VENV) $(RUCIO_VENV) $(IDDS_VENV) .orchid .mypy_cache .ruff_cache .pytest_cache test-artifacts

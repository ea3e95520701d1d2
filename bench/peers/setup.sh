#!/usr/bin/env bash
# Install each peer orchestrator in a virtualenv of its own, outside Orchid's dependencies:
#   bench/peers/setup.sh [dask|parsl|prefect|airflow|dask-jobqueue ...]   (default: all)
# Each system gets bench/peers/.venvs/<system>, made with `python3 -m venv` and filled with
# `pip install -r bench/peers/requirements-<system>.txt`. Idempotent: a venv whose stamp
# holds the sha256 of its requirements file is left alone; an edited file reinstalls it.
# PYTHON=... picks the interpreter (default python3).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-python3}"
ALL=(dask parsl prefect airflow dask-jobqueue)
systems=("$@")
[ ${#systems[@]} -eq 0 ] && systems=("${ALL[@]}")

fail() { echo "setup.sh: $*" >&2; exit 1; }

for system in "${systems[@]}"; do
  req="$HERE/requirements-$system.txt"
  venv="$HERE/.venvs/$system"
  stamp="$venv/.installed"
  [ -f "$req" ] || fail "no $req: known systems are ${ALL[*]}"
  sum="$(sha256sum "$req" | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sum" ] && [ -x "$venv/bin/python" ]; then
    echo "$system: up to date ($venv)"
    continue
  fi
  if [ -d "$venv" ]; then
    echo "$system: $req changed or the install was incomplete: recreating $venv"
    rm -rf "$venv"
  fi
  echo "$system: creating $venv with $($PYTHON --version 2>&1)"
  mkdir -p "$HERE/.venvs"
  "$PYTHON" -m venv "$venv" || fail "$system: python3 -m venv failed"
  echo "$system: pip install -r $req"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req" \
    || fail "$system: pip install -r $req failed (see the messages above)"
  echo "$sum" > "$stamp"
  echo "$system: installed ($("$venv/bin/python" -m pip freeze 2>/dev/null | wc -l) packages)"
done

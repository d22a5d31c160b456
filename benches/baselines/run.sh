#!/usr/bin/env bash
# The Python job queues beside RustyRay's durable queue, on this machine's
# Redis and PostgreSQL: Celery (Redis broker) and procrastinate (PostgreSQL).
# Same shape as `cargo bench --bench queue`'s end-to-end figure: N trivial
# jobs enqueued first, then one worker started and timed until all are done.
#
#   benches/baselines/run.sh            # needs Redis on 6379 and PostgreSQL on 5432
#
# Installs both into a cached virtualenv; creates (and drops) a database
# `rustyray_baseline` for procrastinate.
set -euo pipefail
cd "$(dirname "$0")"
venv="${RUSTYRAY_BASELINE_VENV:-$HOME/.cache/rustyray-baseline-venv}"
if [ ! -x "$venv/bin/celery" ] || [ ! -x "$venv/bin/procrastinate" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "celery[redis]==5.*" "procrastinate==3.*" "psycopg[binary]"
fi
pg="${RUSTYRAY_BASELINE_PG:-postgresql://postgres@127.0.0.1:5432}"
psql "$pg/postgres" -q -c 'SET client_min_messages = warning' -c 'DROP DATABASE IF EXISTS rustyray_baseline' -c 'CREATE DATABASE rustyray_baseline'
trap 'psql "$pg/postgres" -q -c "DROP DATABASE IF EXISTS rustyray_baseline" || true' EXIT
export PROCRASTINATE_URL="$pg/rustyray_baseline"
export PYTHONPATH="$PWD"
"$venv/bin/procrastinate" --app procrastinate_bench.app schema --apply >/dev/null
"$venv/bin/python" celery_bench.py
"$venv/bin/python" procrastinate_bench.py

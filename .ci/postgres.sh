#!/usr/bin/env bash
# Install (if needed) and start a PostgreSQL server for the multi-worker search test.
# Prints the URL to use; prints nothing when no server could be started.
set -u
{
  command -v pg_ctlcluster >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; }
  version=$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1)
  [ -n "$version" ] || exit 0
  pg_lsclusters -h 2>/dev/null | grep -q "^$version main" || pg_createcluster "$version" main
  pg_ctlcluster "$version" main start 2>/dev/null || true
  su postgres -c "psql -qc \"DO \\\$\\\$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname='quadnas') THEN CREATE ROLE quadnas LOGIN PASSWORD 'quadnas'; END IF; END\\\$\\\$;\"" &&
  { su postgres -c "psql -qtAc \"SELECT 1 FROM pg_database WHERE datname='quadnas'\"" | grep -q 1 || su postgres -c "createdb -O quadnas quadnas"; }
} >&2 && echo "postgresql://quadnas:quadnas@127.0.0.1:5432/quadnas"

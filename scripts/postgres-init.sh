#!/usr/bin/env bash
# Creates the gate's own database and role next to Airflow's (the gate never uses Airflow's metadata DB).
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<SQL
CREATE ROLE releasegate LOGIN PASSWORD '${RELEASEGATE_DB_PASSWORD}';
CREATE DATABASE releasegate OWNER releasegate;
SQL

#!/bin/bash
# Target database of the compose stack: `analytics` (the database sink writes its tables and
# offsets here) and `cdc_state` (the sink workers' shared state store).
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname analytics <<SQL
CREATE ROLE analytics WITH LOGIN PASSWORD '${ANALYTICS_PASSWORD}';
GRANT ALL ON SCHEMA public TO analytics;
ALTER DATABASE analytics OWNER TO analytics;
CREATE ROLE cdc_state WITH LOGIN PASSWORD '${STATE_PASSWORD}';
CREATE DATABASE cdc_state OWNER cdc_state;
SQL

#!/bin/bash
# Source database of the compose stack: a `cdc` role with REPLICATION, two tables, and the
# publication the bridge uses (created here because publishing needs table ownership).
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname shop <<SQL
CREATE ROLE cdc WITH LOGIN REPLICATION PASSWORD '${PG_PASSWORD}';
CREATE TABLE public.customers (
    id          bigint PRIMARY KEY,
    name        text NOT NULL,
    email       text,
    country     text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE public.orders (
    id           bigint PRIMARY KEY,
    customer_id  bigint NOT NULL REFERENCES public.customers (id),
    amount       numeric(12, 2) NOT NULL,
    status       text NOT NULL DEFAULT 'new',
    created_at   timestamptz NOT NULL DEFAULT now()
);
GRANT SELECT ON ALL TABLES IN SCHEMA public TO cdc;
CREATE PUBLICATION cdc_bridge_shop FOR TABLE public.customers, public.orders;
INSERT INTO public.customers (id, name, email, country) VALUES
    (1, 'Ada Lovelace', 'ada@example.com', 'GB'),
    (2, 'Grace Hopper', 'grace@example.com', 'US');
INSERT INTO public.orders (id, customer_id, amount) VALUES (1, 1, 42.50), (2, 2, 17.00);
SQL

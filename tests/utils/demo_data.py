#!/usr/bin/env python
"""Create and fill the demo ChefCloud database: the runbook's six tables with realistic data.

~4000 organisations (ORG_10000 .. ORG_13999, so the runbook's ORG_12345 exists), 24 monthly periods
(2024-01 .. 2025-12), several metrics, cost centres and statuses. Tables that already hold rows are
left alone, so running it again is quick.

    python tests/utils/demo_data.py --rows 200000            # uses the libpq environment (PGHOST, ...)
    python tests/utils/demo_data.py --rows 1000 --dsn "host=127.0.0.1 port=5432 dbname=x user=postgres"
"""
import argparse
import os
import sys
import time

import psycopg2
from psycopg2 import sql

ORGS = 4000
PERIODS = "to_char(date '2024-01-01' + ((i %% 24) || ' months')::interval, 'YYYY-MM')"
ORG = "'ORG_' || (10000 + (i::bigint * 7919) %% {orgs})".format(orgs=ORGS)

TABLES = {
    'franchise_overview': (
        "id bigint PRIMARY KEY, org_id text NOT NULL, period text NOT NULL, branch_id int NOT NULL,"
        " revenue numeric(14,2) NOT NULL, orders int NOT NULL, avg_ticket numeric(10,2) NOT NULL,"
        " updated_at timestamptz NOT NULL",
        "SELECT i, {org}, {period}, i %% 97, round((random() * 100000)::numeric, 2), (random() * 5000)::int,"
        " round((random() * 80)::numeric, 2), now() - (i %% 700) * interval '1 hour'"),
    'franchise_rankings': (
        "id bigint PRIMARY KEY, org_id text NOT NULL, metric text NOT NULL, period text NOT NULL,"
        " branch_id int NOT NULL, rank int NOT NULL, value numeric(14,2) NOT NULL",
        "SELECT i, {org}, (ARRAY['sales','margin','waste','nps','labor','footfall'])[1 + i %% 6], {period},"
        " i %% 97, 1 + i %% 50, round((random() * 100000)::numeric, 2)"),
    'franchise_budgets': (
        "id bigint PRIMARY KEY, org_id text NOT NULL, cost_center text NOT NULL, period text NOT NULL,"
        " budget numeric(14,2) NOT NULL, actual numeric(14,2) NOT NULL",
        "SELECT i, {org}, (ARRAY['ops','marketing','kitchen','logistics','admin','it'])[1 + i %% 6], {period},"
        " round((random() * 50000)::numeric, 2), round((random() * 50000)::numeric, 2)"),
    'inventory_batches': (
        "id bigint PRIMARY KEY, org_id text NOT NULL, sku text NOT NULL, branch_id int NOT NULL,"
        " quantity numeric(12,3) NOT NULL, received_at timestamptz NOT NULL, expires_at date",
        "SELECT i, {org}, 'SKU-' || lpad(((i * 31) %% 20000)::text, 5, '0'), i %% 97,"
        " round((random() * 500)::numeric, 3), now() - (i %% 900) * interval '1 hour',"
        " current_date + (i %% 120)"),
    'purchase_orders': (
        "id bigint PRIMARY KEY, org_id text NOT NULL, supplier_id int NOT NULL, status text NOT NULL,"
        " total numeric(14,2) NOT NULL, created_at timestamptz NOT NULL",
        "SELECT i, {org}, i %% 350, (ARRAY['draft','submitted','approved','received','cancelled'])[1 + i %% 5],"
        " round((random() * 20000)::numeric, 2), timestamptz '2024-01-01' + (i %% 17520) * interval '1 hour'"),
    'payments': (
        "id bigint PRIMARY KEY, org_id text NOT NULL, order_id bigint NOT NULL, status text NOT NULL,"
        " method text NOT NULL, amount numeric(12,2) NOT NULL, created_at timestamptz NOT NULL",
        "SELECT i, {org}, i * 3, (ARRAY['pending','authorized','captured','refunded','failed'])[1 + i %% 5],"
        " (ARRAY['card','cash','transfer','wallet'])[1 + i %% 4], round((random() * 300)::numeric, 2),"
        " timestamptz '2024-01-01' + (i %% 17520) * interval '1 hour'"),
}


def load(conn, rows, schema='public', log=print, first=1):
    """Create the six tables in ``schema`` if missing and fill the empty ones with ``rows`` rows
    (ids ``first`` .. ``first + rows - 1``)."""
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(sql.SQL('CREATE SCHEMA IF NOT EXISTS {}').format(sql.Identifier(schema)))
        for table, (columns, select) in TABLES.items():
            ident = sql.Identifier(schema, table)
            cur.execute(sql.SQL('CREATE TABLE IF NOT EXISTS {} (' + columns + ')').format(ident))
            cur.execute(sql.SQL('SELECT EXISTS (SELECT 1 FROM {})').format(ident))
            if cur.fetchone()[0]:
                log('%-20s already loaded' % table)
                continue
            start = time.monotonic()
            query = sql.SQL('INSERT INTO {} ' + select.format(org=ORG, period=PERIODS)
                            + ' FROM generate_series(%s, %s) AS i').format(ident)
            cur.execute(query, (first, first + rows - 1))
            cur.execute(sql.SQL('ANALYZE {}').format(ident))
            log('%-20s %d rows in %.1f s' % (table, rows, time.monotonic() - start))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rows', type=int, default=int(os.environ.get('ROWS', 200000)),
                        help='rows per table (default: $ROWS or 200000)')
    parser.add_argument('--dsn', default='', help='libpq connection string (default: the PG* environment)')
    parser.add_argument('--create-db', metavar='NAME', help='create this database first if it does not exist')
    args = parser.parse_args(argv)
    if args.rows < 1:
        parser.error('--rows must be at least 1')
    try:
        if args.create_db:
            admin = psycopg2.connect(args.dsn, dbname='postgres')
            admin.autocommit = True
            with admin.cursor() as cur:
                cur.execute('SELECT 1 FROM pg_database WHERE datname = %s', (args.create_db,))
                if cur.fetchone() is None:
                    cur.execute(sql.SQL('CREATE DATABASE {}').format(sql.Identifier(args.create_db)))
            admin.close()
        conn = psycopg2.connect(args.dsn, **({'dbname': args.create_db} if args.create_db else {}))
        load(conn, args.rows)
        conn.close()
    except psycopg2.Error as exc:
        print('demo_data: %s' % ' '.join(str(exc).split()), file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())

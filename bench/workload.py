#!/usr/bin/env python
"""A steady writer: INSERT and UPDATE on the six runbook tables at a fixed rate, from its own connection.

Open loop: operation k is due at start + k / rate. Its latency is measured from the moment it was
due (not from when it could start), so a blocked statement shows up as a stall of the writers, and the
operations queued behind it show what an application would see (no coordinated omission).

    python bench/workload.py --dsn "host=127.0.0.1 port=54339 user=postgres dbname=bench" \
        --rate 200 --out /tmp/w.csv       # until SIGTERM / SIGINT

Output: one CSV line per operation: due (unix time, s), latency (ms), table, kind.
Inserted rows have ids >= INSERT_BASE, so the runner can delete them between runs.
"""
import argparse
import os
import random
import signal
import sys
import time

import psycopg2

INSERT_BASE = 1_000_000_000
TABLES = {  # table -> (INSERT statement with %(id)s, UPDATE statement with %(id)s)
    'franchise_overview': (
        "INSERT INTO franchise_overview VALUES (%(id)s, 'ORG_12345', '2025-11', 1, 10, 1, 10, now())",
        "UPDATE franchise_overview SET revenue = revenue + 1, updated_at = now() WHERE id = %(id)s"),
    'franchise_rankings': (
        "INSERT INTO franchise_rankings VALUES (%(id)s, 'ORG_12345', 'sales', '2025-11', 1, 1, 10)",
        "UPDATE franchise_rankings SET value = value + 1 WHERE id = %(id)s"),
    'franchise_budgets': (
        "INSERT INTO franchise_budgets VALUES (%(id)s, 'ORG_12345', 'ops', '2025-11', 10, 10)",
        "UPDATE franchise_budgets SET actual = actual + 1 WHERE id = %(id)s"),
    'inventory_batches': (
        "INSERT INTO inventory_batches VALUES (%(id)s, 'ORG_12345', 'SKU-00001', 1, 1, now(), current_date)",
        "UPDATE inventory_batches SET quantity = quantity + 1 WHERE id = %(id)s"),
    'purchase_orders': (
        "INSERT INTO purchase_orders VALUES (%(id)s, 'ORG_12345', 1, 'draft', 10, now())",
        "UPDATE purchase_orders SET total = total + 1 WHERE id = %(id)s"),
    'payments': (
        "INSERT INTO payments VALUES (%(id)s, 'ORG_12345', 1, 'pending', 'card', 10, now())",
        "UPDATE payments SET amount = amount + 1 WHERE id = %(id)s"),
}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--dsn', required=True)
    ap.add_argument('--rate', type=float, default=200.0, help='operations per second (default 200)')
    ap.add_argument('--rows', type=int, required=True, help='rows per table (UPDATE picks ids 1..rows)')
    ap.add_argument('--out', required=True, help='CSV file to write')
    ap.add_argument('--seed', type=int, default=None)
    args = ap.parse_args(argv)

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    rnd = random.Random(args.seed)
    conn = psycopg2.connect(args.dsn, application_name='bench_workload')
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute('SET log_min_duration_statement = -1')  # keep the server log for the builds
    cur.execute('SET synchronous_commit = on')
    # The runner deletes ids >= INSERT_BASE between runs; the pid keeps two writers apart.
    next_id = INSERT_BASE + (os.getpid() % 1000) * 1_000_000
    tables = list(TABLES)
    interval = 1.0 / args.rate
    start = time.time() + 0.05
    k = 0
    with open(args.out, 'w', buffering=1 << 16) as out:
        out.write('due,latency_ms,table,kind\n')
        while not stop:
            due = start + k * interval
            now = time.time()
            if due > now:
                time.sleep(due - now)
                if stop:
                    break
            table = tables[k % len(tables)]
            kind = 'insert' if (k // len(tables)) % 2 == 0 else 'update'
            if kind == 'insert':
                next_id += 1
                params = {'id': next_id}
            else:
                params = {'id': rnd.randint(1, args.rows)}
            try:
                cur.execute(TABLES[table][0 if kind == 'insert' else 1], params)
                ok = ''
            except psycopg2.Error as exc:  # counted as an operation with its latency, marked failed
                ok = '!' + (exc.pgcode or 'err')
            latency = (time.time() - due) * 1000.0
            out.write('%.4f,%.3f,%s,%s%s\n' % (due, latency, table, kind, ok))
            k += 1
    conn.close()
    return 0


if __name__ == '__main__':
    sys.exit(main())

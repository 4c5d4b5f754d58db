# -*- coding: utf-8 -*-
# Copyright: ChefCloud Platform Engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Progress of index builds, from pg_stat_progress_create_index, as numbers and one line each.

A 30-minute build is never silent: the pg_index_set action plugin polls this while its builds run in
the background; a waiting build names who blocks it (pid, user, state, transaction age).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.chefcloud.pgindex.plugins.module_utils import catalog, eta
from ansible_collections.chefcloud.pgindex.plugins.module_utils.connection import psycopg2, sql
from ansible_collections.chefcloud.pgindex.plugins.module_utils.errors import SpecError


def percent(row):
    """Percent done of the current phase: blocks, else tuples, else lockers; None when unknown."""
    for done, total in (('blocks_done', 'blocks_total'), ('tuples_done', 'tuples_total'),
                        ('lockers_done', 'lockers_total')):
        if row.get(total):
            return round(100.0 * row[done] / row[total], 1)
    return None


def describe(row):
    """idx on schema.table: phase, 42.0% (blocks 420/1000), 12.3 s [waiting for virtualxid lock]."""
    pct = row['percent']
    counts = ''
    if row['blocks_total']:
        counts = ' (blocks %d/%d)' % (row['blocks_done'], row['blocks_total'])
    elif row['tuples_total']:
        counts = ' (tuples %d/%d)' % (row['tuples_done'], row['tuples_total'])
    elif row['lockers_total']:
        counts = ' (lockers %d/%d)' % (row['lockers_done'], row['lockers_total'])
    waiting = ''
    if row.get('waiting_for'):
        who = row.get('blockers') or []
        waiting = ' [waiting for a %s lock: %s%s]' % (
            row['waiting_for'], 'older transactions' if row['waiting_for'] in ('virtualxid', 'transactionid')
            else 'the table', ('; blocked by ' + ', '.join(describe_blocker(b) for b in who)) if who else '')
    return '%s on %s.%s: %s%s%s, %.1f s%s' % (
        row['index'] or '(new index)', row['schema'], row['table'], row['phase'],
        '' if pct is None else ', %.1f%%' % pct, counts, row['elapsed_s'] or 0.0, waiting)


def build_progress(conn, tables):
    """Progress of the builds on ``tables`` (list of (schema, table)); missing tables are skipped."""
    oids = []
    for schema, table in tables:
        try:
            info = catalog.get_table(conn, schema, table)
        except SpecError:
            continue
        if info is not None:
            oids.append(info.oid)
    if tables and not oids:
        return []
    rows = catalog.index_build_progress(conn, oids)
    blocked = blockers(conn, [row['pid'] for row in rows if row['waiting_for']])
    for row in rows:
        row['blockers'] = blocked.get(row['pid'], [])
        row['percent'] = percent(row)
        row['line'] = describe(row)
    return rows


# Who a waiting build waits for: pg_blocking_pids (the holders of the lock it waits for, including
# the virtualxid of an old snapshot) joined to pg_stat_activity. Kept next to the progress code:
# every progress line of a waiting build names them.
BLOCKERS_QUERY = (
    'SELECT w.pid, b.pid, b.usename, b.state,'
    '       round(extract(epoch FROM now() - b.xact_start)::numeric, 1)::float8, b.application_name'
    ' FROM unnest(%s::int[]) AS w(pid)'
    ' CROSS JOIN LATERAL unnest(pg_blocking_pids(w.pid)) AS bp(pid)'
    ' JOIN pg_stat_activity b ON b.pid = bp.pid'
    ' ORDER BY w.pid, b.xact_start NULLS LAST')


def blockers(conn, pids):
    """{waiting pid: [{pid, user, state, xact_age_s, application_name}]} for backends ``pids``."""
    found = {}
    if not pids:
        return found
    with conn.cursor() as cur:
        cur.execute(BLOCKERS_QUERY, (list(pids),))
        for waiter, pid, user, state, age, application in cur.fetchall():
            found.setdefault(waiter, []).append(dict(pid=pid, user=user, state=state, xact_age_s=age,
                                                     application_name=application))
    return found


def describe_blocker(blocker):
    return 'pid %s user=%s state=%s transaction age=%s' % (
        blocker['pid'], blocker['user'], blocker['state'],
        'none' if blocker['xact_age_s'] is None else '%.1f s' % blocker['xact_age_s'])


def table_bytes(conn, tables):
    """{(schema, table): bytes of the table and its TOAST (pg_table_size), summed over partitions}."""
    sizes = {}
    with conn.cursor() as cur:
        for schema, table in sorted(set(tables)):
            cur.execute(
                'SELECT coalesce(sum(pg_table_size(r.relid)), 0)::int8'
                ' FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace'
                ' CROSS JOIN LATERAL (SELECT c.oid AS relid UNION ALL'
                '                     SELECT relid FROM pg_partition_tree(c.oid) WHERE isleaf AND relid <> c.oid) r'
                " WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p', 'm')", (schema, table))
            sizes[(schema, table)] = cur.fetchone()[0]
    return sizes


def index_states(conn, items, default_schema='public', workers=0, maintenance_work_mem=None):
    """Per change-set item: the catalog's view of its index (exists, valid), the DROP statement of an
    INVALID one, and the estimated build duration (eta.estimate_seconds from the table's size)."""
    keys = [(item.get('schema') or default_schema, item.get('table')) for item in items]
    sizes = table_bytes(conn, [k for k in keys if k[1]])
    mwm = None
    try:
        with conn.cursor() as cur:
            # the memory of the builds' sorts (for the ETA's phase shares): the change set's setting, else the server's
            cur.execute("SELECT pg_size_bytes(coalesce(%s, current_setting('maintenance_work_mem')))",
                        (maintenance_work_mem or None,))
            mwm = cur.fetchone()[0]
    except psycopg2.Error:  # an odd value is the change set reader's to refuse; the ETA just does without
        mwm = None
    states = []
    for item, key in zip(items, keys):
        schema = key[0]
        with conn.cursor() as cur:
            cur.execute('SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid'
                        ' JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s',
                        (schema, item.get('name')))
            row = cur.fetchone()
        size = sizes.get(key, 0)
        state = dict(name=item.get('name'), schema=schema, table=item.get('table'), exists=row is not None,
                     valid=row[0] if row else None, table_bytes=size,
                     estimate_s=eta.estimate_seconds(size, workers=workers),
                     sort_spills=eta.sort_spills(size, mwm), drop_sql=None)
        if row is not None and not row[0]:
            state['drop_sql'] = sql.SQL('DROP INDEX CONCURRENTLY IF EXISTS {}.{}').format(
                sql.Identifier(schema), sql.Identifier(item.get('name'))).as_string(conn)
        states.append(state)
    return states

# -*- coding: utf-8 -*-
# Copyright: ChefCloud Platform Engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Progress of index builds, from pg_stat_progress_create_index, as numbers and one line each.

A 30-minute build is never silent: the role polls this while its builds run in the background.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.chefcloud.pgindex.plugins.module_utils import catalog
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
        waiting = ' [waiting for a %s lock: %s]' % (row['waiting_for'], 'older transactions'
                                                    if row['waiting_for'] in ('virtualxid', 'transactionid')
                                                    else 'the table')
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
    for row in rows:
        row['percent'] = percent(row)
        row['line'] = describe(row)
    return rows

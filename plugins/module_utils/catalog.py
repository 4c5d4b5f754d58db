# -*- coding: utf-8 -*-
# Copyright: ChefCloud Platform Engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every read of the catalog, activity and progress views, as named functions.

Nothing here writes.  Functions take an open connection and return plain objects or dicts.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.chefcloud.pgindex.plugins.module_utils.errors import SpecError

# pg_class.relkind values that can carry an index, and names for the ones that cannot.
INDEXABLE_RELKINDS = {'r': 'table', 'p': 'partitioned table', 'm': 'materialized view'}
RELKIND_NAMES = {
    'i': 'index', 'I': 'partitioned index', 'S': 'sequence', 't': 'TOAST table', 'v': 'view',
    'c': 'composite type', 'f': 'foreign table',
}
RELKIND_NAMES.update(INDEXABLE_RELKINDS)


class TableInfo(object):
    def __init__(self, oid, schema, name, relkind, owner):
        self.oid = oid
        self.schema = schema
        self.name = name
        self.relkind = relkind
        self.owner = owner


class IndexState(object):
    """An existing index as the catalog shows it."""

    def __init__(self, oid, schema, name, table_schema, table, valid, ready, live, definition, size_bytes):
        self.oid = oid
        self.schema = schema
        self.name = name
        self.table_schema = table_schema
        self.table = table
        self.valid = valid
        self.ready = ready
        self.live = live
        self.definition = definition
        self.size_bytes = size_bytes

    @property
    def qualified_table(self):
        return '%s.%s' % (self.table_schema, self.table)


def server_version_num(conn):
    """server_version_num as an int, e.g. 180001."""
    return conn.server_version


def in_recovery(conn):
    """True on a standby (a server in recovery)."""
    with conn.cursor() as cur:
        cur.execute('SELECT pg_is_in_recovery()')
        return cur.fetchone()[0]


def relation_kind(conn, schema, name):
    """The relkind of schema.name, or None when no such relation exists."""
    with conn.cursor() as cur:
        cur.execute('SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace'
                    ' WHERE n.nspname = %s AND c.relname = %s', (schema, name))
        row = cur.fetchone()
    return row[0] if row else None


def get_table(conn, schema, name):
    """The table schema.name, or None when it does not exist.

    Raises SpecError when the relation exists but cannot carry an index (a view, a sequence...).
    """
    with conn.cursor() as cur:
        cur.execute('SELECT c.oid, c.relkind, pg_get_userbyid(c.relowner)'
                    ' FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace'
                    ' WHERE n.nspname = %s AND c.relname = %s', (schema, name))
        row = cur.fetchone()
    if row is None:
        return None
    oid, relkind, owner = row
    if relkind not in INDEXABLE_RELKINDS:
        raise SpecError('%s.%s is a %s, not a table: indexes can only be built on tables and materialized views'
                        % (schema, name, RELKIND_NAMES.get(relkind, 'relation of kind %r' % relkind)))
    return TableInfo(oid, schema, name, relkind, owner)


def get_index(conn, schema, name):
    """The index schema.name, or None when no relation of that name exists.

    Raises SpecError when schema.name is some other kind of relation.
    """
    with conn.cursor() as cur:
        cur.execute(
            'SELECT c.oid, c.relkind, t.relname, i.indisvalid, i.indisready, i.indislive,'
            '       pg_get_indexdef(c.oid), pg_relation_size(c.oid)'
            ' FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace'
            ' LEFT JOIN pg_index i ON i.indexrelid = c.oid'
            ' LEFT JOIN pg_class t ON t.oid = i.indrelid'
            ' WHERE n.nspname = %s AND c.relname = %s', (schema, name))
        row = cur.fetchone()
    if row is None:
        return None
    oid, relkind, table, valid, ready, live, definition, size_bytes = row
    if relkind not in ('i', 'I'):
        raise SpecError('%s.%s already exists and is a %s, not an index; choose another index name'
                        % (schema, name, RELKIND_NAMES.get(relkind, 'relation of kind %r' % relkind)))
    # An index always lives in the schema of its table.
    return IndexState(oid, schema, name, schema, table, valid, ready, live, definition, size_bytes)


def builds_in_progress(conn, index_oid):
    """Sessions (other than ours) building or reindexing this index right now."""
    with conn.cursor() as cur:
        cur.execute(
            'SELECT p.pid, p.command, p.phase, a.usename, a.application_name,'
            '       round(extract(epoch FROM now() - a.query_start)::numeric, 1)::float8'
            ' FROM pg_stat_progress_create_index p'
            ' LEFT JOIN pg_stat_activity a ON a.pid = p.pid'
            ' WHERE p.index_relid = %s AND p.pid <> pg_backend_pid()', (index_oid,))
        rows = cur.fetchall()
    keys = ('pid', 'command', 'phase', 'user', 'application_name', 'running_s')
    return [dict(zip(keys, row)) for row in rows]

# -*- coding: utf-8 -*-
# Copyright: ChefCloud Platform Engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every read of the catalog, activity and progress views, as named functions.

Nothing here writes.  Functions take an open connection and return plain objects or dicts.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.chefcloud.pgindex.plugins.module_utils.connection import sql
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

    def __init__(self, oid, schema, name, table_schema, table, valid, ready, live, definition, size_bytes,
                 quoted_name=None, tablespace=None, partitioned=False):
        self.quoted_name = quoted_name or '"%s"' % name.replace('"', '""')
        self.tablespace = tablespace
        self.partitioned = partitioned      # an index on a partitioned table (relkind I)
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

    Raises SpecError when schema.name is some other kind of relation.  ``tablespace`` is the name
    of the tablespace the index is stored in (the database default when it has none of its own).
    """
    with conn.cursor() as cur:
        cur.execute(
            'SELECT c.oid, c.relkind, t.relname, i.indisvalid, i.indisready, i.indislive,'
            '       pg_get_indexdef(c.oid), pg_relation_size(c.oid), quote_ident(c.relname),'
            '       coalesce(ts.spcname, (SELECT dts.spcname FROM pg_database d'
            '                             JOIN pg_tablespace dts ON dts.oid = d.dattablespace'
            '                             WHERE d.datname = current_database()))'
            ' FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace'
            ' LEFT JOIN pg_index i ON i.indexrelid = c.oid'
            ' LEFT JOIN pg_class t ON t.oid = i.indrelid'
            ' LEFT JOIN pg_tablespace ts ON ts.oid = c.reltablespace'
            ' WHERE n.nspname = %s AND c.relname = %s', (schema, name))
        row = cur.fetchone()
    if row is None:
        return None
    oid, relkind, table, valid, ready, live, definition, size_bytes, quoted_name, tablespace = row
    if relkind not in ('i', 'I'):
        raise SpecError('%s.%s already exists and is a %s, not an index; choose another index name'
                        % (schema, name, RELKIND_NAMES.get(relkind, 'relation of kind %r' % relkind)))
    # An index always lives in the schema of its table.
    return IndexState(oid, schema, name, schema, table, valid, ready, live, definition, size_bytes,
                      quoted_name=quoted_name, tablespace=tablespace, partitioned=relkind == 'I')


def quote_ident(conn, name):
    """The identifier as the server prints it in definitions (quoted only when needed)."""
    with conn.cursor() as cur:
        cur.execute('SELECT quote_ident(%s)', (name,))
        return cur.fetchone()[0]


def partitions(conn, table_oid):
    """Every partition below a partitioned table, parents before their children:
    dicts of oid, schema, name, relkind, parent_oid."""
    with conn.cursor() as cur:
        cur.execute(
            'SELECT t.relid, n.nspname, c.relname, c.relkind, t.parentrelid'
            ' FROM pg_partition_tree(%s) t JOIN pg_class c ON c.oid = t.relid'
            ' JOIN pg_namespace n ON n.oid = c.relnamespace'
            ' WHERE t.level > 0 ORDER BY t.level, n.nspname, c.relname', (table_oid,))
        keys = ('oid', 'schema', 'name', 'relkind', 'parent_oid')
        return [dict(zip(keys, row)) for row in cur.fetchall()]


def attached_indexes(conn, index_oid):
    """Indexes attached (directly or below) to the partitioned index ``index_oid``, by table oid:
    {table_oid: (schema, index name, indisvalid)}."""
    with conn.cursor() as cur:
        cur.execute(
            'SELECT i.indrelid, n.nspname, c.relname, i.indisvalid'
            ' FROM pg_partition_tree(%s) t JOIN pg_index i ON i.indexrelid = t.relid'
            ' JOIN pg_class c ON c.oid = t.relid JOIN pg_namespace n ON n.oid = c.relnamespace'
            ' WHERE t.level > 0', (index_oid,))
        return dict((row[0], (row[1], row[2], row[3])) for row in cur.fetchall())


def lock_waits(conn, pid):
    """Ungranted locks backend ``pid`` waits for, each with the pids blocking it."""
    with conn.cursor() as cur:
        cur.execute('SELECT l.locktype, pg_blocking_pids(l.pid) FROM pg_locks l'
                    ' WHERE l.pid = %s AND NOT l.granted', (pid,))
        return [dict(locktype=row[0], blocking_pids=list(row[1] or [])) for row in cur.fetchall()]


def sessions(conn, pids):
    """pg_stat_activity of ``pids``: who they are and what they run (query cut to 500 characters)."""
    with conn.cursor() as cur:
        cur.execute(
            'SELECT a.pid, a.usename, a.application_name, a.state,'
            '       round(extract(epoch FROM now() - a.xact_start)::numeric, 1)::float8,'
            '       left(a.query, 500), a.backend_type'
            ' FROM pg_stat_activity a WHERE a.pid = ANY(%s) ORDER BY a.xact_start NULLS LAST', (list(pids),))
        keys = ('pid', 'user', 'application_name', 'state', 'xact_age_s', 'query', 'backend_type')
        return [dict(zip(keys, row)) for row in cur.fetchall()]


def cancel_backend(conn, pid):
    """pg_cancel_backend(pid): cancel the statement that backend is running."""
    with conn.cursor() as cur:
        cur.execute('SELECT pg_cancel_backend(%s)', (pid,))
        return cur.fetchone()[0]


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


# --- pg_index_verify: extensions, statistics, the indexes of a table --------------------------------

def current_database(conn):
    """Name of the database the connection is on."""
    with conn.cursor() as cur:
        cur.execute('SELECT current_database()')
        return cur.fetchone()[0]


def extension_schema(conn, name):
    """Schema the extension ``name`` is installed in (in this database), or None."""
    with conn.cursor() as cur:
        cur.execute('SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace'
                    ' WHERE e.extname = %s', (name,))
        row = cur.fetchone()
    return row[0] if row else None


def extension_available(conn, name):
    """True when the server has the files of extension ``name`` (CREATE EXTENSION would find it)."""
    with conn.cursor() as cur:
        cur.execute('SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = %s)', (name,))
        return cur.fetchone()[0]


def index_access_method(conn, index_oid):
    """Access method of an index: btree, hash, gin..."""
    with conn.cursor() as cur:
        cur.execute('SELECT a.amname FROM pg_class c JOIN pg_am a ON a.oid = c.relam WHERE c.oid = %s', (index_oid,))
        row = cur.fetchone()
    return row[0] if row else None


def size_pretty(conn, size_bytes):
    """pg_size_pretty of a size in bytes, e.g. '4408 kB' (the runbook's size query prints this)."""
    if size_bytes is None:
        return None
    with conn.cursor() as cur:
        cur.execute('SELECT pg_size_pretty(%s::bigint)', (size_bytes,))
        return cur.fetchone()[0]


def index_usage(conn, index_oids):
    """pg_stat_user_indexes of these indexes, by oid: idx_scan, idx_tup_read, idx_tup_fetch,
    size_bytes and (PostgreSQL 16+) last_idx_scan as ISO 8601 text."""
    last_scan = 's.last_idx_scan' if server_version_num(conn) >= 160000 else 'NULL::timestamptz'
    with conn.cursor() as cur:
        cur.execute(
            'SELECT s.indexrelid, s.idx_scan, s.idx_tup_read, s.idx_tup_fetch, pg_relation_size(s.indexrelid),'
            '       to_char(' + last_scan + ' AT TIME ZONE \'UTC\', \'YYYY-MM-DD"T"HH24:MI:SS"Z"\')'
            ' FROM pg_stat_user_indexes s WHERE s.indexrelid = ANY(%s)', (list(index_oids),))
        rows = cur.fetchall()
    keys = ('idx_scan', 'idx_tup_read', 'idx_tup_fetch', 'size_bytes', 'last_idx_scan')
    return dict((row[0], dict(zip(keys, row[1:]))) for row in rows)


def stats_reset(conn):
    """When the statistics of this database were last reset (ISO 8601 UTC), or None if never."""
    with conn.cursor() as cur:
        cur.execute('SELECT to_char(stats_reset AT TIME ZONE \'UTC\', \'YYYY-MM-DD"T"HH24:MI:SS"Z"\')'
                    ' FROM pg_stat_database WHERE datname = current_database()')
        row = cur.fetchone()
    return row[0] if row else None


def table_indexes(conn, table_oids):
    """Every index on these tables, with what a review of unused and duplicate indexes needs."""
    with conn.cursor() as cur:
        cur.execute(
            'SELECT c.oid, n.nspname, t.relname, c.relname, quote_ident(c.relname), pg_get_indexdef(c.oid),'
            '       i.indisunique, i.indisprimary,'
            '       EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = c.oid),'
            '       i.indisvalid, a.amname, i.indkey::int2[], i.indnkeyatts,'
            '       i.indexprs IS NOT NULL, i.indpred IS NOT NULL,'
            '       coalesce(s.idx_scan, 0), pg_relation_size(c.oid), i.indrelid'
            ' FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid'
            ' JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace'
            ' JOIN pg_am a ON a.oid = c.relam'
            ' LEFT JOIN pg_stat_user_indexes s ON s.indexrelid = c.oid'
            ' WHERE i.indrelid = ANY(%s) ORDER BY n.nspname, t.relname, c.relname', (list(table_oids),))
        rows = cur.fetchall()
    keys = ('oid', 'schema', 'table', 'name', 'quoted_name', 'definition', 'unique', 'primary', 'constraint',
            'valid', 'method', 'columns', 'key_columns', 'expressions', 'predicate', 'idx_scan', 'size_bytes',
            'table_oid')
    return [dict(zip(keys, row)) for row in rows]


def statement_stats(conn, schema, query_id):
    """calls, mean and total execution time (ms) that pg_stat_statements (installed in ``schema``)
    holds for ``query_id`` in this database, summed over users; None when it holds nothing.

    Raises psycopg2.Error when the library is not loaded (shared_preload_libraries).
    """
    with conn.cursor() as cur:
        cur.execute(sql.SQL(
            'SELECT sum(calls)::bigint, sum(total_exec_time) / nullif(sum(calls), 0), sum(total_exec_time)'
            ' FROM {} WHERE queryid = %s AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database())'
        ).format(sql.Identifier(schema, 'pg_stat_statements')), (query_id,))
        row = cur.fetchone()
    if row is None or not row[0]:
        return None
    return dict(calls=row[0], mean_exec_time_ms=round(row[1], 3), total_exec_time_ms=round(row[2], 3))


# --- pg_preflight: the session, settings, tables, space, activity and replication ------------------

def _iso(column):
    """SQL for a timestamptz column as ISO 8601 UTC text (NULL stays NULL)."""
    return 'to_char(%s AT TIME ZONE \'UTC\', \'YYYY-MM-DD"T"HH24:MI:SS"Z"\')' % column


def session_info(conn):
    """Who and where this session is: current_user, session_user, database, superuser, version()."""
    with conn.cursor() as cur:
        cur.execute('SELECT current_user, session_user, current_database(),'
                    '       (SELECT rolsuper FROM pg_roles WHERE rolname = current_user), version(),'
                    '       current_setting(%s)', ('server_version',))
        keys = ('current_user', 'session_user', 'database', 'superuser', 'version', 'server_version')
        return dict(zip(keys, cur.fetchone()))


def visible_settings(conn, names):
    """{name: {setting, unit, value, source, reset_val}} of the settings this role may read (pg_settings
    hides superuser-only ones such as data_directory from roles without pg_read_all_settings).
    ``reset_val`` (with the unit) is what a new session of this role in this database starts with."""
    with conn.cursor() as cur:
        cur.execute('SELECT name, setting, unit, current_setting(name), source, reset_val || coalesce(unit, %s)'
                    ' FROM pg_settings WHERE name = ANY(%s)', ('', list(names)))
        rows = cur.fetchall()
    return dict((row[0], dict(setting=row[1], unit=row[2], value=row[3], source=row[4], reset_val=row[5]))
                for row in rows)


def role_database_settings(conn, names):
    """Defaults of ``names`` set with ALTER ROLE / ALTER DATABASE (pg_db_role_setting) that apply to a
    new session of this login role in this database: dicts of level, name, value."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT CASE WHEN s.setrole = 0 AND s.setdatabase = 0 THEN 'all roles'"
            "            WHEN s.setrole = 0 THEN 'database' WHEN s.setdatabase = 0 THEN 'role'"
            "            ELSE 'role in database' END,"
            "       split_part(c.item, '=', 1), substr(c.item, strpos(c.item, '=') + 1)"
            " FROM pg_db_role_setting s, unnest(s.setconfig) AS c(item)"
            " WHERE s.setrole IN (0, (SELECT oid FROM pg_roles WHERE rolname = session_user))"
            "   AND s.setdatabase IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))"
            "   AND split_part(c.item, '=', 1) = ANY(%s)"
            " ORDER BY 2, s.setrole, s.setdatabase", (list(names),))
        return [dict(level=row[0], name=row[1], value=row[2]) for row in cur.fetchall()]


def relation_summary(conn, schema, name):
    """schema.name with what building an index on it needs, or None when it does not exist:
    oid, relkind, owner, owned (current_user has the owner's privileges), schema_create."""
    with conn.cursor() as cur:
        cur.execute(
            'SELECT c.oid, c.relkind, pg_get_userbyid(c.relowner), pg_has_role(current_user, c.relowner, %s),'
            '       has_schema_privilege(current_user, n.oid, %s)'
            ' FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace'
            ' WHERE n.nspname = %s AND c.relname = %s', ('USAGE', 'CREATE', schema, name))
        row = cur.fetchone()
    if row is None:
        return None
    return dict(zip(('oid', 'relkind', 'owner', 'owned', 'schema_create'), row))


def table_storage(conn, table_oid):
    """The heaps holding the rows of a table (itself, or every leaf partition), each with the
    planner's statistics and its current size: oid, reltuples, relpages, pages, heap_bytes,
    table_bytes (heap + TOAST + free space and visibility maps)."""
    with conn.cursor() as cur:
        cur.execute(
            'SELECT l.oid, l.reltuples::float8, l.relpages,'
            '       pg_relation_size(l.oid) / current_setting(%s)::int, pg_relation_size(l.oid), pg_table_size(l.oid)'
            ' FROM pg_class l'
            ' WHERE l.relkind IN (%s, %s) AND (l.oid = %s OR l.oid IN'
            '       (SELECT relid FROM pg_partition_tree(%s::oid::regclass) WHERE isleaf))'
            ' ORDER BY l.oid', ('block_size', 'r', 'm', table_oid, table_oid))
        keys = ('oid', 'reltuples', 'relpages', 'pages', 'heap_bytes', 'table_bytes')
        return [dict(zip(keys, row)) for row in cur.fetchall()]


def table_columns(conn, table_oid):
    """Every column of a table: name, type, typlen and avg_width from pg_stats (None when the
    column has no statistics, or this role may not read them)."""
    with conn.cursor() as cur:
        cur.execute(
            'SELECT a.attname, format_type(a.atttypid, a.atttypmod), t.typlen,'
            '       (SELECT s.avg_width FROM pg_stats s WHERE s.schemaname = n.nspname AND s.tablename = c.relname'
            '         AND s.attname = a.attname ORDER BY s.inherited DESC LIMIT 1)'
            ' FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid'
            ' JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_type t ON t.oid = a.atttypid'
            ' WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum', (table_oid,))
        keys = ('name', 'type', 'typlen', 'avg_width')
        return [dict(zip(keys, row)) for row in cur.fetchall()]


def index_tablespace(conn, explicit=None):
    """The tablespace a new index goes to: ``explicit``, else default_tablespace, else the
    database's; None when ``explicit`` (or default_tablespace) names no tablespace.
    Dict of oid, name, location (pg_tablespace_location: '' for pg_default), database_default,
    create (current_user may create objects in it), source."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT CASE WHEN nullif(%s, '') IS NOT NULL THEN 'index tablespace key'"
            "            WHEN current_setting('default_tablespace') <> '' THEN 'default_tablespace'"
            "            ELSE 'database default' END,"
            "       coalesce(nullif(%s, ''), nullif(current_setting('default_tablespace'), ''),"
            "                (SELECT t.spcname FROM pg_database d JOIN pg_tablespace t ON t.oid = d.dattablespace"
            "                  WHERE d.datname = current_database()))", (explicit or '', explicit or ''))
        source, name = cur.fetchone()
        cur.execute(
            'SELECT t.oid, t.spcname, pg_tablespace_location(t.oid), t.oid = d.dattablespace,'
            '       has_tablespace_privilege(t.oid, %s)'
            ' FROM pg_tablespace t, pg_database d WHERE d.datname = current_database() AND t.spcname = %s',
            ('CREATE', name))
        row = cur.fetchone()
    if row is None:
        return dict(name=name, source=source, oid=None)
    return dict(zip(('oid', 'name', 'location', 'database_default', 'create'), row), source=source)


def database_tablespace(conn):
    """Name and location of the database's default tablespace (where temporary files go when
    temp_tablespaces is empty)."""
    with conn.cursor() as cur:
        cur.execute('SELECT t.spcname, pg_tablespace_location(t.oid) FROM pg_database d'
                    ' JOIN pg_tablespace t ON t.oid = d.dattablespace WHERE d.datname = current_database()')
        return dict(zip(('name', 'location'), cur.fetchone()))


_SESSION_COLUMNS = (
    'a.pid, a.usename, a.application_name, host(a.client_addr), a.backend_type, a.state,'
    ' round(extract(epoch FROM now() - a.xact_start)::numeric, 1)::float8,'
    ' round(extract(epoch FROM now() - a.state_change)::numeric, 1)::float8,'
    ' a.backend_xmin IS NOT NULL, a.query')
_SESSION_KEYS = ('pid', 'user', 'application_name', 'client_addr', 'backend_type', 'state', 'xact_age_s',
                 'state_age_s', 'holds_snapshot', 'query')


def long_transactions(conn, min_age_s):
    """Sessions of this database (other than ours and autovacuum) whose transaction started more
    than ``min_age_s`` seconds ago, oldest first."""
    with conn.cursor() as cur:
        cur.execute(
            'SELECT ' + _SESSION_COLUMNS + ' FROM pg_stat_activity a'
            ' WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()'
            "   AND a.backend_type <> 'autovacuum worker' AND a.xact_start < now() - make_interval(secs => %s)"
            ' ORDER BY a.xact_start', (min_age_s,))
        return [dict(zip(_SESSION_KEYS, row)) for row in cur.fetchall()]


def idle_in_transaction(conn):
    """Sessions of this database that are idle inside an open transaction, longest idle first."""
    with conn.cursor() as cur:
        cur.execute(
            'SELECT ' + _SESSION_COLUMNS + ' FROM pg_stat_activity a'
            ' WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()'
            '   AND a.state LIKE %s ORDER BY a.state_change', ('idle in transaction%',))
        return [dict(zip(_SESSION_KEYS, row)) for row in cur.fetchall()]


def prepared_transactions(conn):
    """Every prepared transaction (pg_prepared_xacts) on the server, oldest first: gid, owner,
    database, prepared (ISO 8601 UTC), age_s, this_database."""
    with conn.cursor() as cur:
        cur.execute(
            'SELECT gid, owner, database, ' + _iso('prepared') + ','
            '       round(extract(epoch FROM now() - prepared)::numeric, 1)::float8, database = current_database()'
            ' FROM pg_prepared_xacts ORDER BY prepared')
        keys = ('gid', 'owner', 'database', 'prepared', 'age_s', 'this_database')
        return [dict(zip(keys, row)) for row in cur.fetchall()]


def relation_locks(conn, table_oids, modes):
    """Locks held or awaited on these tables in one of ``modes`` (pg_locks mode names), by any
    session but ours, with who holds them and what it is doing: a VACUUM (vacuum_phase) or an
    index build (build_command, build_phase) in progress. Prepared transactions have no pid."""
    with conn.cursor() as cur:
        cur.execute(
            'SELECT l.relation::int8, l.mode, l.granted, l.pid, a.usename, a.application_name, a.backend_type,'
            '       a.state, round(extract(epoch FROM now() - coalesce(a.xact_start, a.query_start))::numeric, 1)'
            '       ::float8, a.query, v.phase, b.command, b.phase'
            ' FROM pg_locks l'
            ' LEFT JOIN pg_stat_activity a ON a.pid = l.pid'
            ' LEFT JOIN pg_stat_progress_vacuum v ON v.pid = l.pid'
            ' LEFT JOIN pg_stat_progress_create_index b ON b.pid = l.pid'
            " WHERE l.locktype = 'relation'"
            '   AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())'
            '   AND l.relation = ANY(%s::oid[]) AND l.mode = ANY(%s)'
            '   AND l.pid IS DISTINCT FROM pg_backend_pid()'
            ' ORDER BY l.granted DESC, l.pid', (list(table_oids), list(modes)))
        keys = ('table_oid', 'mode', 'granted', 'pid', 'user', 'application_name', 'backend_type', 'state',
                'xact_age_s', 'query', 'vacuum_phase', 'build_command', 'build_phase')
        return [dict(zip(keys, row)) for row in cur.fetchall()]


def replication_standbys(conn):
    """pg_stat_replication, with the replay lag in bytes behind this primary's current WAL position
    (None when unknown) and the lags as seconds."""
    with conn.cursor() as cur:
        cur.execute(
            'SELECT r.pid, r.usename, r.application_name, host(r.client_addr), r.state, r.sync_state,'
            '       pg_wal_lsn_diff(pg_current_wal_lsn(), r.replay_lsn)::int8,'
            '       extract(epoch FROM r.write_lag)::float8, extract(epoch FROM r.flush_lag)::float8,'
            '       extract(epoch FROM r.replay_lag)::float8'
            ' FROM pg_stat_replication r ORDER BY r.application_name, r.pid')
        keys = ('pid', 'user', 'application_name', 'client_addr', 'state', 'sync_state', 'replay_lag_bytes',
                'write_lag_s', 'flush_lag_s', 'replay_lag_s')
        return [dict(zip(keys, row)) for row in cur.fetchall()]


def replication_slots(conn):
    """pg_replication_slots with the WAL each retains behind the current position (bytes)."""
    with conn.cursor() as cur:
        cur.execute('SELECT slot_name, slot_type, database, active,'
                    '       pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::int8'
                    ' FROM pg_replication_slots ORDER BY slot_name')
        keys = ('slot_name', 'slot_type', 'database', 'active', 'retained_bytes')
        return [dict(zip(keys, row)) for row in cur.fetchall()]


def archiver_stats(conn):
    """pg_stat_archiver (times as ISO 8601 UTC text), and whether the last attempt failed."""
    with conn.cursor() as cur:
        cur.execute(
            'SELECT archived_count, last_archived_wal, ' + _iso('last_archived_time') + ','
            '       failed_count, last_failed_wal, ' + _iso('last_failed_time') + ', ' + _iso('stats_reset') + ','
            '       last_failed_time IS NOT NULL AND (last_archived_time IS NULL'
            '                                        OR last_failed_time > last_archived_time)'
            ' FROM pg_stat_archiver')
        keys = ('archived_count', 'last_archived_wal', 'last_archived_time', 'failed_count', 'last_failed_wal',
                'last_failed_time', 'stats_reset', 'failing')
        return dict(zip(keys, cur.fetchone()))


def index_build_progress(conn, table_oids):
    """pg_stat_progress_create_index rows for builds on ``table_oids`` (all tables when empty), with
    the index name, how long the statement runs and the lock it waits for, if any."""
    with conn.cursor() as cur:
        cur.execute(
            'SELECT p.pid, tn.nspname, t.relname, coalesce(ic.relname, \'\'), p.command, p.phase,'
            '       p.blocks_done, p.blocks_total, p.tuples_done, p.tuples_total,'
            '       p.lockers_done, p.lockers_total, p.partitions_done, p.partitions_total,'
            '       round(extract(epoch FROM now() - a.query_start)::numeric, 1)::float8,'
            '       a.application_name, a.wait_event_type, a.wait_event,'
            '       (SELECT l.locktype FROM pg_locks l WHERE l.pid = p.pid AND NOT l.granted LIMIT 1)'
            ' FROM pg_stat_progress_create_index p'
            ' JOIN pg_class t ON t.oid = p.relid JOIN pg_namespace tn ON tn.oid = t.relnamespace'
            ' LEFT JOIN pg_class ic ON ic.oid = p.index_relid'
            ' LEFT JOIN pg_stat_activity a ON a.pid = p.pid'
            ' WHERE p.datid = (SELECT oid FROM pg_database WHERE datname = current_database())'
            '   AND (cardinality(%s::oid[]) = 0 OR p.relid = ANY(%s::oid[]))'
            ' ORDER BY tn.nspname, t.relname, p.pid', (list(table_oids), list(table_oids)))
        keys = ('pid', 'schema', 'table', 'index', 'command', 'phase', 'blocks_done', 'blocks_total',
                'tuples_done', 'tuples_total', 'lockers_done', 'lockers_total', 'partitions_done',
                'partitions_total', 'elapsed_s', 'application_name', 'wait_event_type', 'wait_event',
                'waiting_for')
        return [dict(zip(keys, row)) for row in cur.fetchall()]

# -*- coding: utf-8 -*-
# Copyright: ChefCloud Platform Engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The post-deploy watch (the runbook's Step 4) minus Ansible: what the new indexes bought and what they cost.

Three layers, bottom to top:

  read / snapshot   one reading of the server's cumulative counters (pg_stat_database, pg_stat_wal,
                    pg_stat_user_tables, pg_stat_user_indexes, pg_stat_statements), the sessions waiting on
                    locks with their blockers, and optionally the verification queries' p95; a snapshot is two
                    readings ``window`` seconds apart, taken BEFORE the build, so "before" has rates too
  window            the signals between two readings (pure): per table the HOT-update ratio, updates/s, table
                    and index growth; rollbacks, deadlocks and conflicts per second; WAL bytes per transaction;
                    the new indexes' idx_scan; pg_stat_statements calls and mean of the verification queries
  judge             the guard (pure): each health and write-cost signal of the watch window against the snapshot
                    and its threshold; a tripped signal says which, where, and the numbers

pg_index_watch (the module) reads; the action plugin of the same name loops on the controller, calls window
and judge, prints progress and returns the series and the verdict.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.chefcloud.pgindex.plugins.module_utils import catalog, verify
from ansible_collections.chefcloud.pgindex.plugins.module_utils.changeset import read_changeset
from ansible_collections.chefcloud.pgindex.plugins.module_utils.connection import psycopg2
from ansible_collections.chefcloud.pgindex.plugins.module_utils.errors import SpecError
from ansible_collections.chefcloud.pgindex.plugins.module_utils.execute import apply_session_settings, duration_seconds, one_line

LOCK_NOT_AVAILABLE = '55P03'
QUERY_CANCELED = '57014'

# The guard's thresholds: name -> (default, what it bounds). Each is a role variable pgindex_watch_<name>.
THRESHOLDS = dict(
    max_hot_ratio_drop=(20.0, 'percentage points the HOT-update ratio of a table may fall below its ratio before the build'),
    min_updates=(100, 'updates of a table in the watch window (and in the snapshot) before its HOT ratio is judged'),
    max_wal_per_xact_increase=(100.0, 'percent WAL bytes per transaction may rise over the snapshot\'s'),
    min_transactions=(100, 'transactions in the watch window (and in the snapshot) before WAL per transaction is judged'),
    max_table_growth=(20.0, 'percent a table may grow during the watch (only above 1 MiB of growth)'),
    max_index_growth=(50.0, 'percent a new index may grow during the watch (only above 1 MiB of growth)'),
    max_rollback_rate_increase=(1.0, 'rollbacks per second the watch window may add to the snapshot\'s rate'),
    max_deadlocks=(0, 'deadlocks the watch window may count above the snapshot\'s rate'),
    max_conflicts=(0, 'recovery conflicts the watch window may count above the snapshot\'s rate'),
    max_lock_waiters=(5, 'sessions of the database waiting on a lock at one sample'),
    max_connection_increase=(50.0, 'percent the client connections may rise over the snapshot (only above +5)'),
)
GROWTH_FLOOR_BYTES = 1024 * 1024
CONNECTION_FLOOR = 5
REGRESSION_MODES = ('warn', 'fail', 'rollback')


def thresholds(given=None):
    """The thresholds with defaults filled in; SpecError for an unknown name or a value that is not a number >= 0."""
    result = dict((name, default) for name, (default, _doc) in THRESHOLDS.items())
    for name, value in (given or {}).items():
        if value is None:
            continue
        if name not in THRESHOLDS:
            raise SpecError('unknown watch threshold %r (known: %s)' % (name, ', '.join(sorted(THRESHOLDS))))
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise SpecError('watch threshold %s must be a number >= 0, got %r' % (name, value))
        if number < 0:
            raise SpecError('watch threshold %s must be a number >= 0, got %r' % (name, value))
        result[name] = number
    return result


# --------------------------------------------------------------------------------------------------
# Reading the server
# --------------------------------------------------------------------------------------------------

def _rows(conn, query, args=None):
    with conn.cursor() as cur:
        cur.execute(query, args)
        return cur.fetchall()


def _pairs(names):
    return [n[0] for n in names], [n[1] for n in names]


class OwnTransactions(object):
    """Counts the transactions the watch's own session runs (autocommit statements commit, READ ONLY blocks roll
    back), so that its own sampling never counts as the application's commits and rollbacks."""

    def __init__(self):
        self.commits = 0
        self.rollbacks = 0
        self.in_block = False

    def saw(self, query):
        word = query.strip().split(None, 1)[0].upper() if isinstance(query, str) and query.strip() else ''
        if word in ('BEGIN', 'START'):
            self.in_block = True
        elif word in ('ROLLBACK', 'ABORT'):
            self.in_block, self.rollbacks = False, self.rollbacks + 1
        elif word in ('COMMIT', 'END'):
            self.in_block, self.commits = False, self.commits + 1
        elif not self.in_block:
            self.commits += 1

    def now(self):
        return dict(commits=self.commits, rollbacks=self.rollbacks)

    def cursor_factory(self):
        counter = self

        class CountingCursor(psycopg2.extensions.cursor):
            def execute(self, query, args=None):
                counter.saw(query)
                return super(CountingCursor, self).execute(query, args)
        return CountingCursor


def count_own(conn):
    """Count the transactions ``conn`` runs from now on; returns the counter."""
    counter = OwnTransactions()
    conn.cursor_factory = counter.cursor_factory()
    return counter


def read_database(conn, own=None):
    """pg_stat_database of this database, the client connections, pg_stat_wal's wal_bytes (14+), the time;
    ``own_at_read``: the session's own transactions so far (an OwnTransactions), when counted."""
    at_read = own.now() if own is not None else dict(commits=0, rollbacks=0)
    row = _rows(conn, 'SELECT extract(epoch FROM clock_timestamp())::float8, d.xact_commit, d.xact_rollback,'
                      ' d.deadlocks, d.conflicts, d.numbackends,'
                      " (SELECT count(*) FROM pg_stat_activity a WHERE a.datname = current_database()"
                      "  AND a.backend_type = 'client backend' AND a.pid <> pg_backend_pid())"
                      ' FROM pg_stat_database d WHERE d.datname = current_database()')[0]
    found = dict(at=row[0], xact_commit=row[1], xact_rollback=row[2], deadlocks=row[3], conflicts=row[4],
                 backends=row[5], connections=row[6], wal_bytes=None, own_at_read=at_read,
                 own_cum=dict(commits=0, rollbacks=0))
    if conn.server_version >= 140000:
        found['wal_bytes'] = int(_rows(conn, 'SELECT wal_bytes FROM pg_stat_wal')[0][0])
    return found


def _sized(conn, query_with_size, query_without_size, args):
    """Rows with sizes from pg_*_size (which takes AccessShareLock, bounded by lock_timeout); when a lock is
    not available (a session waits for ACCESS EXCLUSIVE), the sizes the catalog last recorded (relpages)."""
    try:
        return _rows(conn, query_with_size, args), True
    except psycopg2.Error as exc:
        if exc.pgcode not in (LOCK_NOT_AVAILABLE, QUERY_CANCELED):
            raise
        return _rows(conn, query_without_size, args), False


def read_tables(conn, tables):
    """{'schema.table': counters} from pg_stat_user_tables, with table and index sizes."""
    if not tables:
        return {}
    schemas, names = _pairs(tables)
    base = ('SELECT s.schemaname, s.relname, s.n_tup_upd, s.n_tup_hot_upd, s.n_tup_ins, s.n_tup_del, s.n_live_tup, %s'
            ' FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid'
            ' WHERE (s.schemaname, s.relname) IN (SELECT * FROM unnest(%%s::text[], %%s::text[]))')
    rows, exact = _sized(conn, base % 'pg_table_size(s.relid), pg_indexes_size(s.relid)',
                         base % "c.relpages::bigint * current_setting('block_size')::bigint, NULL::bigint",
                         (schemas, names))
    found = {}
    for row in rows:
        found['%s.%s' % (row[0], row[1])] = dict(n_tup_upd=row[2], n_tup_hot_upd=row[3], n_tup_ins=row[4],
                                                 n_tup_del=row[5], n_live_tup=row[6], table_bytes=row[7],
                                                 indexes_bytes=row[8], sizes_exact=exact)
    return found


def read_indexes(conn, indexes):
    """{'schema.index': {exists, valid, idx_scan, size_bytes}} of the change set's indexes."""
    if not indexes:
        return {}
    schemas, names = _pairs(indexes)
    base = ('SELECT n.nspname, c.relname, i.indisvalid, coalesce(s.idx_scan, 0), %s'
            ' FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_index i ON i.indexrelid = c.oid'
            ' LEFT JOIN pg_stat_user_indexes s ON s.indexrelid = c.oid'
            ' WHERE (n.nspname, c.relname) IN (SELECT * FROM unnest(%%s::text[], %%s::text[]))')
    rows, _exact = _sized(conn, base % 'pg_relation_size(c.oid)',
                          base % "c.relpages::bigint * current_setting('block_size')::bigint", (schemas, names))
    found = dict(('%s.%s' % pair, dict(exists=False, valid=None, idx_scan=None, size_bytes=None)) for pair in indexes)
    for row in rows:
        found['%s.%s' % (row[0], row[1])] = dict(exists=True, valid=row[2], idx_scan=row[3], size_bytes=row[4])
    return found


def read_lock_waits(conn):
    """Sessions of this database waiting on a lock, and the sessions at the root of each wait (the blockers:
    blocking others, not waiting themselves), with who they are and what they run."""
    waiting = _rows(conn, 'SELECT a.pid, a.usename, a.application_name, pg_blocking_pids(a.pid),'
                          ' round(extract(epoch FROM clock_timestamp() - a.query_start)::numeric, 1)::float8,'
                          ' left(a.query, 200)'
                          " FROM pg_stat_activity a WHERE a.wait_event_type = 'Lock'"
                          ' AND a.datname = current_database() AND a.pid <> pg_backend_pid() ORDER BY a.pid')
    waiters = [dict(pid=r[0], user=r[1], application_name=r[2], blocked_by=list(r[3] or []), waiting_s=r[4],
                    query=r[5]) for r in waiting]
    waiting_pids = set(w['pid'] for w in waiters)
    roots = {}
    for waiter in waiters:
        for pid in waiter['blocked_by']:
            if pid not in waiting_pids:
                roots[pid] = roots.get(pid, 0) + 1
    blockers = []
    if roots:
        rows = _rows(conn, 'SELECT a.pid, a.usename, a.application_name, a.state,'
                           ' round(extract(epoch FROM clock_timestamp() - a.xact_start)::numeric, 1)::float8,'
                           ' left(a.query, 200),'
                           ' (SELECT string_agg(DISTINCT l.mode, \', \') FROM pg_locks l WHERE l.pid = a.pid AND l.granted'
                           "   AND l.locktype = 'relation' AND l.relation IN (SELECT oid FROM pg_class"
                           "   WHERE relnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)))"
                           ' FROM pg_stat_activity a WHERE a.pid = ANY(%s) ORDER BY a.pid', (sorted(roots),))
        blockers = [dict(pid=r[0], user=r[1], application_name=r[2], state=r[3], xact_age_s=r[4], query=r[5],
                         locks=r[6], blocking=roots[r[0]]) for r in rows]
    return waiters, blockers


def read_statements(conn, queries):
    """pg_stat_statements' calls and total time of each verification query (found by the query identifier
    EXPLAIN VERBOSE gives on 14+), or the reason there are none."""
    schema = catalog.extension_schema(conn, 'pg_stat_statements')
    if schema is None:
        return dict(status='unavailable', reason='pg_stat_statements is not installed in this database', queries={})
    found = {}
    for name, text in queries.items():
        try:
            qid = verify.explain(conn, text).get('Query Identifier')
            stats = catalog.statement_stats(conn, schema, qid) if qid is not None else None
        except psycopg2.Error as exc:
            return dict(status='unavailable', reason=one_line(exc), queries={})
        found[name] = dict(query_identifier=qid, calls=(stats or {}).get('calls', 0),
                           total_exec_time_ms=(stats or {}).get('total_exec_time_ms', 0.0))
    return dict(status='reported', reason=None, queries=found)


def read_latency(conn, queries, samples, timeout_ms):
    """p95 of each verification query over ``samples`` timed executions (pg_index_verify's sampling)."""
    found = {}
    for name, text in queries.items():
        try:
            measured = verify.sample_latency(conn, text, samples, warmup=0, timeout_ms=timeout_ms,
                                             budget_s=max(1.0, timeout_ms / 1000.0 * samples))
            found[name] = dict(p95_ms=measured['p95_ms'], samples=len(measured['samples_ms']),
                               lower_bound=measured['lower_bound'])
        except psycopg2.Error as exc:
            found[name] = dict(p95_ms=None, samples=0, lower_bound=False, error=one_line(exc))
    return found


def read(conn, tables, indexes, queries=None, latency_samples=0, timeout_ms=5000, own=None):
    """One reading: see the module docstring. ``tables``/``indexes``: (schema, name) pairs; ``queries``:
    {index name: bound verification query}."""
    found = read_database(conn, own)
    found['tables'] = read_tables(conn, tables)
    found['indexes'] = read_indexes(conn, indexes)
    found['lock_waits'], found['blockers'] = read_lock_waits(conn)
    found['statements'] = read_statements(conn, queries) if queries else dict(status='unavailable',
                                                                              reason='no verification queries', queries={})
    found['latency'] = read_latency(conn, queries, latency_samples, timeout_ms) if queries and latency_samples else {}
    return found


def snapshot(conn, tables, indexes, queries=None, window_s=0.0, latency_samples=0, timeout_ms=5000, own=None):
    """Two readings ``window_s`` seconds apart (one when 0), taken before the build."""
    readings = [read(conn, tables, indexes, queries, 0, timeout_ms, own)]
    if window_s > 0:
        time.sleep(window_s)
        second = read(conn, tables, indexes, queries, latency_samples, timeout_ms, own)
        first = readings[0]['own_at_read']
        second['own_cum'] = dict((k, second['own_at_read'][k] - first[k]) for k in first)
        readings.append(second)
    return dict(readings=readings, window_s=window_s)


def chain(previous, reading):
    """Carry the own-transaction count of a series to ``reading`` (the next module run's): everything the previous
    run did after its counters were read, and what this run did before reading them."""
    cum = previous.get('own_cum') or dict(commits=0, rollbacks=0)
    after = previous.get('own_after') or dict(commits=0, rollbacks=0)
    before = reading.get('own_at_read') or dict(commits=0, rollbacks=0)
    reading['own_cum'] = dict((k, cum[k] + after.get(k, 0) + before.get(k, 0)) for k in cum)
    return reading


def targets(conn, items, default_schema):
    """(tables, indexes, {index: bound verification query}) of a change set's entries, read by the one
    change-set reader (changeset.read_changeset)."""
    if not isinstance(items, list) or not items:
        raise SpecError('indexes must be a non-empty list of change set entries (name, table, schema, verify)')
    tables, indexes, queries = [], [], {}
    for entry in read_changeset(items, dict(schema=default_schema), require_definition=False):
        if not entry.params.get('table'):
            raise SpecError('index %s: the watch needs the table of every entry' % entry.name)
        if (entry.schema, entry.params['table']) not in tables:
            tables.append((entry.schema, entry.params['table']))
        indexes.append((entry.schema, entry.name))
        query = verify.VerifyQuery.from_entry(entry)
        if query is not None:
            queries[entry.name] = query.bind(conn)
    return tables, indexes, queries


def run(connect, mode, items, schema='public', window_s=0.0, latency_samples=0, query_timeout='5s', lock_timeout='1s'):
    """The module: a snapshot (before the build) or one sample (during the watch). Read only."""
    if mode not in ('snapshot', 'sample'):
        raise SpecError('mode must be snapshot or sample, got %r' % (mode,))
    if window_s < 0 or latency_samples < 0:
        raise SpecError('window and latency_samples must be >= 0')
    conn = connect()
    own = count_own(conn)
    timeout_ms = int(round(duration_seconds(conn, 'query_timeout', query_timeout) * 1000))
    apply_session_settings(conn, dict(lock_timeout=lock_timeout, statement_timeout=str(max(timeout_ms, 1000) * 4)))
    tables, indexes, queries = targets(conn, items, schema)
    result = dict(changed=False, mode=mode, database=catalog.current_database(conn), server_version=conn.server_version,
                  tables=['%s.%s' % t for t in tables], indexes=['%s.%s' % i for i in indexes])
    if mode == 'snapshot':
        result['snapshot'] = snapshot(conn, tables, indexes, queries, window_s, latency_samples, timeout_ms, own)
        result['snapshot'].update(database=result['database'], server_version=result['server_version'])
    else:
        result['reading'] = read(conn, tables, indexes, queries, latency_samples, timeout_ms, own)
        total = own.now()
        result['reading']['own_after'] = dict((k, total[k] - result['reading']['own_at_read'][k]) for k in total)
    return result


# --------------------------------------------------------------------------------------------------
# The signals between two readings (pure)
# --------------------------------------------------------------------------------------------------

def _delta(a, b, key):
    if a is None or b is None or a.get(key) is None or b.get(key) is None:
        return None
    return b[key] - a[key]


def _ratio_pct(part, whole):
    return None if not whole else round(part * 100.0 / whole, 1)


def _per_s(value, seconds):
    return None if value is None or not seconds or seconds <= 0 else round(value / float(seconds), 3)


def cumulative_hot_ratio(table):
    """n_tup_hot_upd / n_tup_upd since the statistics were reset, in percent (None without updates)."""
    return _ratio_pct(table.get('n_tup_hot_upd') or 0, table.get('n_tup_upd') or 0)


def own_scans(readings):
    """{index name: executions} of the verification queries the watch itself timed in ``readings`` (each reading's
    timed executions run after its counters are read, so they show in the next reading's idx_scan)."""
    found = {}
    for reading in readings:
        for name, measured in (reading.get('latency') or {}).items():
            found[name] = found.get(name, 0) + (measured.get('samples') or 0)
    return found


def window(a, b, own_index_scans=None):
    """Every signal between readings ``a`` and ``b`` (b later). ``own_index_scans``: own_scans() of the readings
    from ``a`` up to, not including, ``b``, so idx_scan and pg_stat_statements calls count the application's only
    (the mean covers every execution, the watch's own included)."""
    seconds = round(b['at'] - a['at'], 3)
    zero = dict(commits=0, rollbacks=0)
    own = dict((k, (b.get('own_cum') or zero)[k] - (a.get('own_cum') or zero)[k]) for k in zero)
    xacts = rollbacks = None
    if _delta(a, b, 'xact_commit') is not None:
        rollbacks = max(0, _delta(a, b, 'xact_rollback') - own['rollbacks'])
        xacts = max(0, _delta(a, b, 'xact_commit') - own['commits']) + rollbacks
    wal = _delta(a, b, 'wal_bytes')
    tables = {}
    for name, after in b.get('tables', {}).items():
        before = a.get('tables', {}).get(name)
        if before is None:
            continue
        updates = _delta(before, after, 'n_tup_upd')
        hot = _delta(before, after, 'n_tup_hot_upd')
        growth = _delta(before, after, 'table_bytes')
        tables[name] = dict(
            updates=updates, hot_updates=hot, hot_ratio_pct=_ratio_pct(hot, updates), updates_per_s=_per_s(updates, seconds),
            inserts=_delta(before, after, 'n_tup_ins'), deletes=_delta(before, after, 'n_tup_del'),
            table_bytes=after.get('table_bytes'), table_growth_bytes=growth,
            table_growth_pct=_ratio_pct(growth, before.get('table_bytes')) if growth is not None else None,
            indexes_bytes=after.get('indexes_bytes'), indexes_growth_bytes=_delta(before, after, 'indexes_bytes'))
    indexes = {}
    for name, after in b.get('indexes', {}).items():
        before = a.get('indexes', {}).get(name) or {}
        growth = _delta(before, after, 'size_bytes') if before.get('exists') else None
        scans = _delta(before, after, 'idx_scan') if before.get('exists') else after.get('idx_scan')
        own = (own_index_scans or {}).get(name.split('.', 1)[-1], 0)
        indexes[name] = dict(exists=after.get('exists'), valid=after.get('valid'), size_bytes=after.get('size_bytes'),
                             idx_scan=after.get('idx_scan'), idx_scans=scans, own_scans=own,
                             app_scans=None if scans is None else max(0, scans - own),
                             growth_bytes=growth,
                             growth_pct=_ratio_pct(growth, before.get('size_bytes')) if growth is not None else None)
    statements = {}
    sa, sb = (a.get('statements') or {}).get('queries', {}), (b.get('statements') or {}).get('queries', {})
    for name, after in sb.items():
        before = sa.get(name)
        if before is None:
            continue
        calls = after['calls'] - before['calls']
        own = (own_index_scans or {}).get(name, 0)
        statements[name] = dict(calls=calls, app_calls=max(0, calls - own), own_calls=own,
                                mean_ms=round((after['total_exec_time_ms'] - before['total_exec_time_ms']) / calls, 3)
                                if calls > 0 else None)
    return dict(
        seconds=seconds, transactions=xacts, own_transactions=own, transactions_per_s=_per_s(xacts, seconds),
        rollbacks=rollbacks, rollbacks_per_s=_per_s(rollbacks, seconds),
        deadlocks=_delta(a, b, 'deadlocks'), deadlocks_per_s=_per_s(_delta(a, b, 'deadlocks'), seconds),
        conflicts=_delta(a, b, 'conflicts'), conflicts_per_s=_per_s(_delta(a, b, 'conflicts'), seconds),
        wal_bytes=wal, wal_bytes_per_xact=round(wal / float(xacts), 1) if wal is not None and xacts else None,
        connections=b.get('connections'), lock_waiters=len(b.get('lock_waits') or []), blockers=b.get('blockers') or [],
        tables=tables, indexes=indexes, statements=statements, latency=b.get('latency') or {})


def before_signals(snap):
    """The reference of the guard: the snapshot's window (two readings), else the cumulative counters of its
    one reading (ratios since the statistics were reset; no rates)."""
    readings = (snap or {}).get('readings') or []
    if not readings:
        return None
    last = readings[-1]
    signals = window(readings[0], last) if len(readings) > 1 else dict(
        seconds=0, transactions=None, rollbacks_per_s=None, deadlocks_per_s=None, conflicts_per_s=None,
        wal_bytes_per_xact=None, tables={}, connections=last.get('connections'))
    signals['cumulative_hot_ratio_pct'] = dict((name, cumulative_hot_ratio(t)) for name, t in last.get('tables', {}).items())
    signals['cumulative_updates'] = dict((name, t.get('n_tup_upd')) for name, t in last.get('tables', {}).items())
    signals['connections'] = last.get('connections')
    signals['latency'] = last.get('latency') or {}
    return signals


def hot_ratio_before(before, table, min_updates):
    """(ratio %, source) the table's HOT ratio before the build: the snapshot window's when it saw enough
    updates, else the cumulative one."""
    win = (before.get('tables') or {}).get(table) or {}
    if win.get('updates') is not None and win['updates'] >= min_updates and win.get('hot_ratio_pct') is not None:
        return win['hot_ratio_pct'], 'the %s s before the build' % before.get('seconds')
    if (before.get('cumulative_updates') or {}).get(table, 0) and before['cumulative_updates'][table] >= min_updates:
        return before['cumulative_hot_ratio_pct'][table], 'since the statistics were reset'
    return None, None


# --------------------------------------------------------------------------------------------------
# The guard (pure)
# --------------------------------------------------------------------------------------------------

def _trip(signal, message, value, limit, before=None, table=None, **extra):
    return dict(extra, signal=signal, table=table, value=value, threshold=limit, before=before, message=message)


def judge(before, win, limits, new_indexes=()):
    """The guard: the signals of the watch window ``win`` against ``before`` (before_signals) and ``limits``
    (thresholds()). Returns the tripped signals, each with its numbers; [] is a pass."""
    tripped = []
    before = before or {}
    for name, t in sorted(win.get('tables', {}).items()):
        ref, source = hot_ratio_before(before, name, limits['min_updates'])
        if ref is not None and t.get('updates') is not None and t['updates'] >= limits['min_updates'] \
                and t.get('hot_ratio_pct') is not None and ref - t['hot_ratio_pct'] > limits['max_hot_ratio_drop']:
            tripped.append(_trip(
                'hot_ratio', 'HOT-update ratio of %s fell from %.1f %% (%s) to %.1f %% over %d updates in the watch: '
                'a new index covers a column the application updates, so every update now writes every index '
                '(limit: a drop of %g points)' % (name, ref, source, t['hot_ratio_pct'], t['updates'], limits['max_hot_ratio_drop']),
                t['hot_ratio_pct'], limits['max_hot_ratio_drop'], ref, name, updates=t['updates']))
        if t.get('table_growth_bytes') is not None and t['table_growth_bytes'] > GROWTH_FLOOR_BYTES \
                and (t.get('table_growth_pct') or 0) > limits['max_table_growth']:
            tripped.append(_trip('table_growth', 'table %s grew %.1f %% (%d bytes) during the watch (limit %g %%)' % (
                name, t['table_growth_pct'], t['table_growth_bytes'], limits['max_table_growth']),
                t['table_growth_pct'], limits['max_table_growth'], None, name))
    for name, i in sorted(win.get('indexes', {}).items()):
        if name in new_indexes and i.get('growth_bytes') is not None and i['growth_bytes'] > GROWTH_FLOOR_BYTES \
                and (i.get('growth_pct') or 0) > limits['max_index_growth']:
            tripped.append(_trip('index_growth', 'new index %s grew %.1f %% (%d bytes) during the watch (limit %g %%)' % (
                name, i['growth_pct'], i['growth_bytes'], limits['max_index_growth']),
                i['growth_pct'], limits['max_index_growth'], None, name))
    ref = before.get('wal_bytes_per_xact')
    xacts_before = before.get('transactions') or 0
    if ref and win.get('wal_bytes_per_xact') is not None and (win.get('transactions') or 0) >= limits['min_transactions'] \
            and xacts_before >= limits['min_transactions']:
        increase = (win['wal_bytes_per_xact'] - ref) * 100.0 / ref
        if increase > limits['max_wal_per_xact_increase']:
            tripped.append(_trip('wal_per_xact', 'WAL per transaction rose %.0f %%, from %.0f to %.0f bytes (limit +%g %%)' % (
                increase, ref, win['wal_bytes_per_xact'], limits['max_wal_per_xact_increase']),
                win['wal_bytes_per_xact'], limits['max_wal_per_xact_increase'], ref))
    rate_before = before.get('rollbacks_per_s') or 0.0
    if win.get('rollbacks_per_s') is not None and win['rollbacks_per_s'] - rate_before > limits['max_rollback_rate_increase']:
        tripped.append(_trip('rollbacks', 'rollbacks rose from %.2f/s before the build to %.2f/s in the watch '
                             '(limit +%g/s): the application sees errors' % (
                                 rate_before, win['rollbacks_per_s'], limits['max_rollback_rate_increase']),
                             win['rollbacks_per_s'], limits['max_rollback_rate_increase'], rate_before))
    for signal in ('deadlocks', 'conflicts'):
        count = win.get(signal)
        expected = (before.get(signal + '_per_s') or 0.0) * (win.get('seconds') or 0)
        limit = limits['max_' + signal]
        if count is not None and count - expected > limit:
            tripped.append(_trip(signal, '%d %s in the %s s of the watch (%.1f expected at the rate before the build; '
                                 'limit %g more)' % (count, signal, win.get('seconds'), expected, limit),
                                 count, limit, expected))
    if win.get('lock_waiters', 0) > limits['max_lock_waiters']:
        blockers = win.get('blockers') or []
        named = '; '.join('pid %s (user %s, application %r, %s, transaction open %s s, holding %s, blocking %d: %s)' % (
            b['pid'], b['user'], b['application_name'], b['state'], b['xact_age_s'], b.get('locks') or 'no table lock',
            b['blocking'], (b['query'] or '').strip()) for b in blockers) or 'no root blocker found'
        tripped.append(_trip('lock_waits', '%d sessions wait on locks (limit %g); blocked by %s' % (
            win['lock_waiters'], limits['max_lock_waiters'], named), win['lock_waiters'], limits['max_lock_waiters'],
            None, blockers=blockers))
    conn_before = before.get('connections')
    if conn_before is not None and win.get('connections') is not None:
        increase = win['connections'] - conn_before
        pct = increase * 100.0 / conn_before if conn_before else (100.0 if increase else 0.0)
        if increase > CONNECTION_FLOOR and pct > limits['max_connection_increase']:
            tripped.append(_trip('connections', 'client connections rose from %d to %d (+%.0f %%, limit +%g %%)' % (
                conn_before, win['connections'], pct, limits['max_connection_increase']),
                win['connections'], limits['max_connection_increase'], conn_before))
    return tripped


def health(before, win, tripped):
    """The report's error-rate line: rollbacks and deadlocks before and during the watch."""
    before = before or {}
    return dict(rollbacks_per_s_before=before.get('rollbacks_per_s'), rollbacks_per_s=(win or {}).get('rollbacks_per_s'),
                deadlocks=(win or {}).get('deadlocks'), conflicts=(win or {}).get('conflicts'),
                error_rate_changed=any(t['signal'] in ('rollbacks', 'deadlocks') for t in tripped))


# --------------------------------------------------------------------------------------------------
# Lines for people
# --------------------------------------------------------------------------------------------------

def _fmt(value, pattern='%s', none='-'):
    return none if value is None else pattern % value


def columns(tables, new_indexes):
    names = ['HOT %% %s' % t.split('.', 1)[-1] for t in tables] + ['upd/s']
    names += ['idx_scan new'] if new_indexes else []
    return names + ['p95 ms (worst)', 'rollbacks/s', 'deadlocks', 'lock waiters', 'connections', 'WAL B/xact']


def sample_values(win, tables, new_indexes):
    """The series' columns of one sample: the watch window so far."""
    values = {}
    for t in tables:
        values['HOT %% %s' % t.split('.', 1)[-1]] = _fmt((win['tables'].get(t) or {}).get('hot_ratio_pct'), '%.1f')
    values['upd/s'] = _fmt(sum((x.get('updates_per_s') or 0) for x in win['tables'].values()), '%.1f')
    if new_indexes:
        values['idx_scan new'] = _fmt(sum((win['indexes'].get(i) or {}).get('app_scans') or 0 for i in new_indexes))
    p95 = [v['p95_ms'] for v in (win.get('latency') or {}).values() if v.get('p95_ms') is not None]
    values['p95 ms (worst)'] = _fmt(max(p95) if p95 else None, '%.3f')
    values['rollbacks/s'] = _fmt(win.get('rollbacks_per_s'), '%.2f')
    values['deadlocks'] = _fmt(win.get('deadlocks'))
    values['lock waiters'] = _fmt(win.get('lock_waiters'))
    values['connections'] = _fmt(win.get('connections'))
    values['WAL B/xact'] = _fmt(win.get('wal_bytes_per_xact'), '%.0f')
    return values


def progress_line(n, elapsed_s, duration_s, values, tripped):
    """One line per sample; a table without updates (its HOT ratio '-') is left out of the line, not of the series."""
    shown = ', '.join('%s %s' % (k, v) for k, v in values.items() if not (k.startswith('HOT ') and v == '-'))
    trips = '; '.join(t['signal'] + (' ' + t['table'] if t['table'] else '') for t in tripped)
    suffix = (' | TRIPPED: ' + trips) if tripped else ''
    return 'watch sample %d at %.0f s of %.0f s: %s%s' % (n, elapsed_s, duration_s, shown, suffix)

# -*- coding: utf-8 -*-
# Copyright: ChefCloud Platform Engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run a plan under safety settings: watched waits, retries with backoff, cleanup of leftovers.

A CREATE INDEX CONCURRENTLY that fails after its first phase (a lock wait cancelled, a duplicate
key, a cancel or terminate from another session...) leaves an INVALID index that costs write
overhead and that ``CREATE INDEX ... IF NOT EXISTS`` would then silently keep.  The executor drops
such a leftover concurrently after every failed attempt, then retries (lock waits only) or fails.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import random
import time

from ansible_collections.chefcloud.pgindex.plugins.module_utils import catalog
from ansible_collections.chefcloud.pgindex.plugins.module_utils.connection import psycopg2, sql
from ansible_collections.chefcloud.pgindex.plugins.module_utils.errors import BuildError, PgIndexError, SpecError
from ansible_collections.chefcloud.pgindex.plugins.module_utils.session import Session, server_message
from ansible_collections.chefcloud.pgindex.plugins.module_utils.sql_expression import check_one_statement
from ansible_collections.chefcloud.pgindex.plugins.module_utils.watchdog import (
    LOCK, SNAPSHOT, Watchdog, describe_blockers)

# SQLSTATEs worth another attempt: the statement could not get its locks in time or deadlocked.
RETRYABLE_SQLSTATES = ('55P03', '40P01')  # lock_not_available, deadlock_detected
MAX_RETRY_DELAY = 60.0


def one_line(exc):
    """A psycopg2 error as one line: the server's message, detail and hint (session.server_message)."""
    return server_message(exc)


def apply_session_settings(conn, settings):
    """SET each name=value for the session (values are validated by the server)."""
    Session.apply(conn, settings)


def duration_seconds(conn, name, value):
    """A PostgreSQL duration ('5s', '500ms', '2min', '0') as seconds, parsed by the server like a
    timeout setting (a bare number is milliseconds)."""
    with conn.cursor() as cur:
        try:
            cur.execute('BEGIN')
            cur.execute("SELECT set_config('lock_timeout', %s, true)", (str(value),))
            cur.execute("SELECT setting::bigint FROM pg_settings WHERE name = 'lock_timeout'")
            return cur.fetchone()[0] / 1000.0
        except psycopg2.Error as exc:
            raise SpecError('invalid value %r for %s: %s' % (value, name, one_line(exc)))
        finally:
            cur.execute('ROLLBACK')


class RetryPolicy(object):
    """How long each wait may last and how failed lock waits are retried.

    Delays grow exponentially from ``retry_delay`` (x2 per attempt, capped at 60 s) with full
    jitter, so that several deployers never retry in step.
    """

    def __init__(self, lock_timeout=5.0, snapshot_wait_timeout=0.0, retries=3, retry_delay=2.0,
                 sleep=time.sleep, rng=random.random):
        self.lock_timeout = lock_timeout
        self.snapshot_wait_timeout = snapshot_wait_timeout
        self.retries = retries
        self.retry_delay = retry_delay
        self.sleep = sleep
        self.rng = rng

    def delay(self, attempt):
        ceiling = min(MAX_RETRY_DELAY, self.retry_delay * (2 ** (attempt - 1)))
        return round(ceiling * (0.5 + self.rng() / 2), 3)


class PlanExecutor(object):
    """Executes a plan's steps in order, in a session.Session.

    The session's main connection runs the statements; the session opens the watchdog's connection,
    and a new main connection when the build's own was lost (pg_terminate_backend, network cut), all
    closed with the session.
    """

    def __init__(self, session, spec, policy=None):
        self.session = session
        self.spec = spec
        self.policy = policy or RetryPolicy()
        self.executed = []
        self.sent = []      # every statement sent, in order: failed ones and cleanups too
        self.started = []
        self.cleaned_up = []
        self.blockers = []
        self.attempts = 0
        self._watch_conn = None

    @property
    def conn(self):
        return self.session.conn

    def _connection(self):
        """The session's main connection, reopened if it was lost."""
        if self.session.conn is None or self.session.conn.closed:
            self.session.reconnect()
        return self.session.conn

    def run(self, plan):
        for step in plan.steps:
            self._run_step(step)
        return self.executed

    def _watchdog(self):
        if self._watch_conn is None or self._watch_conn.closed:
            self._watch_conn = self.session.open()
        return Watchdog(self._watch_conn, self.conn.get_backend_pid(), self.policy.lock_timeout,
                        self.policy.snapshot_wait_timeout)

    def _run_step(self, step):
        attempt = 0
        while True:
            attempt += 1
            self.attempts += 1
            conn = self._connection()
            # Proven one statement by PostgreSQL's grammar before it is sent (sql_expression).
            text = check_one_statement(step.description, step.statement.as_string(conn))
            watchdog = self._watchdog()
            if step not in self.started:
                self.started.append(step)
            try:
                with watchdog, conn.cursor() as cur:
                    cur.execute(step.statement)
                self.executed.append(text)
                self.sent.append(text)
                return
            except psycopg2.Error as error:
                self.sent.append(text)
                exc = error
                failure = self._failure(step, exc, watchdog)
            cleanup_note = self._clean_up_leftover(step) if step.cleanup is not None else ''
            retryable = watchdog.reason == LOCK or (watchdog.reason is None and exc.pgcode in RETRYABLE_SQLSTATES)
            if retryable and attempt <= self.policy.retries:
                self.policy.sleep(self.policy.delay(attempt))
                continue
            if retryable and self.policy.retries:
                failure += ' Gave up after %d attempts.' % attempt
            raise BuildError(
                failure + cleanup_note, sqlstate=exc.pgcode, failed_query=text, wait=watchdog.reason,
                error='%s: %s' % (exc.__class__.__name__, server_message(exc)),
                queries=list(self.sent), changed=bool(self.executed), cleaned_up=list(self.cleaned_up),
                blockers=list(self.blockers), attempts=self.attempts)

    def _failure(self, step, exc, watchdog):
        """The message for a failed statement, naming the wait that timed out and who blocked it."""
        self.blockers.extend(b for b in watchdog.blockers if b not in self.blockers)
        who = (' Blocked by: %s.' % describe_blockers(watchdog.blockers)) if watchdog.blockers else ''
        if watchdog.reason == LOCK:
            return ('%s failed: lock_timeout (%ss) waiting for a lock on the table.%s'
                    % (step.description, self.policy.lock_timeout, who))
        if watchdog.reason == SNAPSHOT:
            return ('%s failed: snapshot_wait_timeout (%ss) waiting for older transactions to finish (a '
                    'concurrent build must outwait every transaction older than its snapshot; retrying does '
                    'not help while they stay open: end them or raise snapshot_wait_timeout).%s'
                    % (step.description, self.policy.snapshot_wait_timeout, who))
        message = '%s failed: %s' % (step.description, one_line(exc))
        if exc.pgcode == '23505' and step.kind == 'create':
            message += self._duplicate_groups()
        if isinstance(exc, (psycopg2.OperationalError, psycopg2.InterfaceError)) and self.conn.closed:
            message += ' (the build session was terminated or its connection lost)'
        return message

    def _duplicate_groups(self):
        """' N duplicate groups ...' for a failed unique build, or '' if they cannot be counted quickly."""
        spec = self.spec
        keys = [column.composed_key() for column in spec.columns]
        conditions = [] if spec.nulls_not_distinct else [sql.SQL('{} IS NOT NULL').format(k) for k in keys]
        if spec.where is not None:
            conditions.append(sql.SQL('(%s)' % spec.where))
        query = sql.SQL('SELECT count(*) FROM (SELECT 1 FROM {} {} GROUP BY {} HAVING count(*) > 1) d').format(
            spec.table_identifier(),
            sql.SQL('WHERE ') + sql.SQL(' AND ').join(conditions) if conditions else sql.SQL(''),
            sql.SQL(', ').join(keys))
        try:
            conn = self._connection()
            with conn.cursor() as cur:
                text = check_one_statement('the duplicate-key count of index %s' % spec.qualified_name,
                                           query.as_string(cur), 'SelectStmt')
                cur.execute('BEGIN READ ONLY')
                cur.execute("SELECT set_config('statement_timeout', '60s', true)")
                cur.execute(text)
                count = cur.fetchone()[0]
                cur.execute('ROLLBACK')
        except (psycopg2.Error, PgIndexError):
            return ''
        return ' The table has %d group(s) of rows with duplicate keys; remove them or drop unique.' % count

    def _clean_up_leftover(self, step):
        """Drop the INVALID index a failed build left behind, if any; say what was done."""
        schema, name = step.index
        qualified = '%s.%s' % (schema, name)
        try:
            conn = self._connection()
            leftover = catalog.get_index(conn, schema, name)
            if leftover is None or leftover.valid or catalog.builds_in_progress(conn, leftover.oid):
                return ''
            statement = step.cleanup
            with conn.cursor() as cur:
                # Bounded by the server: the leftover must not wait forever behind the blocker itself.
                cur.execute("SELECT set_config('lock_timeout', %s, false)", ('%dms' % max(1000, 1000 * self.policy.lock_timeout),))
                try:
                    cur.execute(statement)
                finally:
                    cur.execute("SELECT set_config('lock_timeout', '0', false)")
            self.executed.append(statement.as_string(conn))
            self.sent.append(self.executed[-1])
            self.cleaned_up.append(qualified)
            return ' The INVALID index %s the failed build left behind was dropped (DROP INDEX CONCURRENTLY).' % qualified
        except (psycopg2.Error, PgIndexError) as exc:
            return (' The failed build may have left an INVALID index %s that could not be dropped (%s): '
                    'drop it with DROP INDEX CONCURRENTLY before retrying.' % (qualified, one_line(exc)))


def timed(func, *args, **kwargs):
    """(result, seconds) of func(*args, **kwargs)."""
    start = time.monotonic()
    result = func(*args, **kwargs)
    return result, round(time.monotonic() - start, 3)

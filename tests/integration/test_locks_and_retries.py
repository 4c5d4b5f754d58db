"""Locks, waits, retries and cleanup, provoked for real by other sessions."""
import threading
import time

import psycopg2
import pytest

from ansible_collections.chefcloud.pgindex.plugins.module_utils import connection
from ansible_collections.chefcloud.pgindex.plugins.module_utils.ensure import ensure_index
from ansible_collections.chefcloud.pgindex.plugins.module_utils.errors import BuildError
from ansible_collections.chefcloud.pgindex.plugins.module_utils.index_spec import IndexSpec
from helpers.modules import run_module
from helpers.sessions import BackgroundStatement, OldSnapshot, wait_for_build_waiting, wait_until

OVERVIEW = dict(name='idx_fr_overview_org_period', table='franchise_overview', columns=['org_id', 'period'])
CREATE_SQL = ('CREATE INDEX CONCURRENTLY "idx_fr_overview_org_period" ON "public"."franchise_overview"'
              ' USING btree ("org_id", "period")')


def index_module(db, **args):
    return run_module('pg_concurrent_index', dict(db.params, **args))


class TableLock(object):
    """A session holding a lock that conflicts with SHARE UPDATE EXCLUSIVE on a table."""

    def __init__(self, db, table='franchise_overview', mode='SHARE'):
        self.conn = db.connect(application_name='nightly-report')
        self.conn.autocommit = False
        self.pid = self.conn.get_backend_pid()
        with self.conn.cursor() as cur:
            cur.execute('LOCK TABLE %s IN %s MODE' % (table, mode))

    def release(self):
        if not self.conn.closed:
            self.conn.rollback()
            self.conn.close()


class BuildInThread(object):
    """ensure_index in a thread, to act on its session from the test."""

    def __init__(self, db, **options):
        def connect():
            return connection.connect(dict(db.params, connect_params={}), 'chefcloud.pgindex/test-build')
        self.error = None
        self.result = None

        def work():
            try:
                self.result = ensure_index(connect, IndexSpec.from_params(OVERVIEW), 'present',
                                           {'statement_timeout': '0'}, options=options)
            except BuildError as exc:
                self.error = exc
        self.thread = threading.Thread(target=work, daemon=True)
        self.thread.start()

    def join(self):
        self.thread.join(120)
        assert not self.thread.is_alive()


def builder_pid(db):
    wait_until(db, "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = 'chefcloud.pgindex/test-build'"
                   " AND query LIKE 'CREATE INDEX CONCURRENTLY%%' AND wait_event_type = 'Lock')")
    return db.query("SELECT pid FROM pg_stat_activity WHERE application_name = 'chefcloud.pgindex/test-build'"
                    " AND query LIKE 'CREATE INDEX CONCURRENTLY%%'")[0][0]


def test_table_lock_wait_times_out_names_the_blocker_and_retries(db):
    lock = TableLock(db)
    try:
        failed, result = index_module(db, lock_timeout='300ms', retries=2, retry_delay=0.05, **OVERVIEW)
    finally:
        lock.release()
    assert failed
    assert result['wait'] == 'lock_timeout' and result['attempts'] == 3
    assert 'lock_timeout (0.3s) waiting for a lock on the table' in result['msg'] and 'Gave up after 3 attempts' in result['msg']
    blocker = result['blockers'][0]
    assert blocker['pid'] == lock.pid and blocker['application_name'] == 'nightly-report'
    assert blocker['state'] == 'idle in transaction' and blocker['wait'] == 'lock_timeout'
    assert 'LOCK TABLE franchise_overview IN SHARE MODE' in blocker['query']
    assert db.index('idx_fr_overview_org_period') is None


def test_lock_released_between_retries_then_the_build_succeeds(db):
    lock = TableLock(db)
    timer = threading.Timer(1.0, lock.release)
    timer.start()
    try:
        failed, result = index_module(db, lock_timeout='200ms', retries=20, retry_delay=0.2, **OVERVIEW)
    finally:
        timer.join()
    assert not failed, result
    assert result['action'] == 'created' and result['attempts'] >= 2
    assert result['blockers'][0]['pid'] == lock.pid
    assert db.index('idx_fr_overview_org_period')[0] is True


def test_server_side_lock_timeout_would_leave_an_invalid_index_but_ours_does_not(db):
    """The runbook trap: lock_timeout fires in the wait for old snapshots, after the index exists."""
    with OldSnapshot(db):
        runbook = BackgroundStatement(db, CREATE_SQL, settings={'lock_timeout': '300ms'})
        runbook.join()
        assert isinstance(runbook.error, psycopg2.errors.LockNotAvailable)
        assert db.index('idx_fr_overview_org_period')[0] is False   # INVALID index left behind
        failed, result = index_module(db, lock_timeout='300ms', snapshot_wait_timeout='400ms', **OVERVIEW)
    assert failed and result['wait'] == 'snapshot_wait_timeout'
    # the old INVALID index was dropped by the plan, the new attempt's leftover by the cleanup
    assert result['queries'][0].startswith('DROP INDEX CONCURRENTLY')
    assert result['cleaned_up'] == ['public.idx_fr_overview_org_period']
    assert db.index('idx_fr_overview_org_period') is None


@pytest.mark.parametrize('signal,message', [
    ('pg_cancel_backend', 'canceling statement due to user request'),
    ('pg_terminate_backend', 'terminated or its connection lost'),
])
def test_cancel_or_terminate_mid_build_leaves_no_invalid_index(db, signal, message):
    snapshot = OldSnapshot(db)
    build = BuildInThread(db)
    try:
        pid = builder_pid(db)
        assert db.query('SELECT %s(%%s)' % signal, (pid,))[0][0] is True
        build.join()
    finally:
        snapshot.end()
    assert build.error is not None and build.error.details['wait'] is None
    assert message in build.error.msg
    assert build.error.details['attempts'] == 1  # a person's cancel or terminate is not retried
    # cleaned up from the build's session, or from a new one when it was terminated
    assert build.error.details['cleaned_up'] == ['public.idx_fr_overview_org_period']
    assert db.index('idx_fr_overview_org_period') is None


def test_waits_for_a_build_in_progress_by_another_session(db):
    snapshot = OldSnapshot(db)
    other = BackgroundStatement(db, CREATE_SQL)
    wait_for_build_waiting(db, other.pid)
    timer = threading.Timer(1.0, snapshot.end)
    timer.start()
    try:
        failed, result = index_module(db, on_build_in_progress='wait', build_wait_timeout=60, **OVERVIEW)
    finally:
        timer.join()
        other.join()
    assert not failed, result
    assert result['action'] == 'none' and result['valid'] is True   # the other session's build finished it


def test_gives_up_waiting_for_another_build_after_build_wait_timeout(db):
    snapshot = OldSnapshot(db)
    other = BackgroundStatement(db, CREATE_SQL)
    try:
        wait_for_build_waiting(db, other.pid)
        started = time.monotonic()
        failed, result = index_module(db, on_build_in_progress='wait', build_wait_timeout=1, **OVERVIEW)
        assert time.monotonic() - started >= 1
    finally:
        snapshot.end()
        other.join()
    assert failed and 'still being built by another session after 1s (pid %d)' % other.pid in result['msg']


def test_invalid_session_settings_are_clear_errors(db):
    for option, value in (('maintenance_work_mem', 'lots'), ('snapshot_wait_timeout', 'forever')):
        failed, result = index_module(db, **dict(OVERVIEW, **{option: value}))
        assert failed and result['msg'].startswith("invalid value '%s' for %s" % (value, option))
    assert db.index('idx_fr_overview_org_period') is None

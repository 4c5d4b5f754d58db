"""One session per unit of work, always closed; lanes that crash; the watchdog driven directly."""
import threading

import psycopg2
import pytest

from ansible_collections.chefcloud.pgindex.plugins.module_utils import connection
from ansible_collections.chefcloud.pgindex.plugins.module_utils.index_set import ensure_index_set, outcome
from ansible_collections.chefcloud.pgindex.plugins.module_utils.session import Session
from ansible_collections.chefcloud.pgindex.plugins.module_utils.watchdog import LOCK, SNAPSHOT, Watchdog
from helpers.sessions import OldSnapshot, wait_until

APP = 'chefcloud.pgindex/test-set'
THREE = [dict(name='idx_fr_overview_org_period', table='franchise_overview', columns=['org_id', 'period']),
         dict(name='idx_inv_batches_org_sku', table='inventory_batches', columns=['org_id', 'sku']),
         dict(name='idx_payments_org_status_created', table='payments', columns=['org_id', 'status', 'created_at'])]


def connector(db, app=APP):
    return lambda: connection.connect(dict(db.params, connect_params={}), app)


def sessions_of(db, app=APP):
    return db.query('SELECT state, query FROM pg_stat_activity WHERE application_name = %s ORDER BY pid', (app,))


def no_sessions_left(db, app=APP):
    """True once no backend of ``app`` is left (a closed connection's backend exits just after the close)."""
    wait_until(db, 'SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = %s)', (app,))
    return True


def test_no_idle_session_is_left_per_finished_index(db):
    lock = db.connect(application_name='nightly-report')
    lock.autocommit = False
    with lock.cursor() as cur:
        cur.execute('LOCK TABLE payments IN SHARE MODE')        # holds the third (last) index in its lock wait
    done = {}
    thread = threading.Thread(target=lambda: done.update(result=ensure_index_set(
        connector(db), THREE, {'lock_timeout': '60s', 'schema': 'public', 'state': 'present'}, 1)), daemon=True)
    thread.start()
    try:
        wait_until(db, "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = %s"
                       " AND query LIKE 'CREATE INDEX CONCURRENTLY \"idx_payments%%' AND wait_event_type = 'Lock')",
                       (APP,))
        during = sessions_of(db)
    finally:
        lock.rollback()
        lock.close()
    thread.join(120)
    results = done['result'][0]
    assert [r['action'] for r in results] == ['created', 'created', 'created']
    # the build's own session and its watchdog's; none left by the two indexes already built
    assert len(during) == 2, during
    assert no_sessions_left(db)


def test_a_lane_whose_connect_raises_fails_the_set(db):
    calls = []
    real = connector(db)

    def connect():
        calls.append(1)
        if len(calls) > 2:
            raise RuntimeError('connect exploded')
        return real()
    results = ensure_index_set(connect, THREE, {'schema': 'public', 'state': 'present'}, 1)[0]
    summary = outcome(results)
    failed = [r for r in results if r['failed']]
    assert summary['failed'] is True and len(failed) == 1
    assert failed[0]['error'] == 'RuntimeError: connect exploded'
    assert summary['msg'].startswith('public.%s: RuntimeError: connect exploded' % failed[0]['name'])
    assert [r['action'] for r in results] == ['created', None, 'not started']
    assert no_sessions_left(db)


def test_session_closes_everything_it_opened_even_on_error(db):
    with pytest.raises(ZeroDivisionError):
        with Session(connect=connector(db), settings={'statement_timeout': '5s'}) as session:
            extra = session.open()
            with session.conn.cursor() as cur:
                cur.execute('SHOW statement_timeout')
                assert cur.fetchone()[0] == '5s'
            assert len(sessions_of(db)) == 2
            1 / 0
    assert session.conn.closed and extra.closed and no_sessions_left(db)


def test_watchdog_cancels_a_lock_wait_and_names_the_blocker(db):
    blocker = db.connect(application_name='nightly-report')
    blocker.autocommit = False
    with blocker.cursor() as cur:
        cur.execute('LOCK TABLE payments IN SHARE MODE')
    victim, watcher = db.connect(), db.connect()
    try:
        with Watchdog(watcher, victim.get_backend_pid(), lock_timeout=0.3, snapshot_wait_timeout=0) as dog:
            with pytest.raises(psycopg2.errors.QueryCanceled), victim.cursor() as cur:
                cur.execute('CREATE INDEX CONCURRENTLY idx_wd ON payments (status)')
        assert dog.reason == LOCK and dog.waited[LOCK] >= 0.3
        assert [b['pid'] for b in dog.blockers] == [blocker.get_backend_pid()]
        assert dog.blockers[0]['application_name'] == 'nightly-report' and dog.blockers[0]['wait'] == LOCK
    finally:
        blocker.rollback()
        for conn in (blocker, victim, watcher):
            conn.close()
    db.query('DROP INDEX IF EXISTS idx_wd')


def test_watchdog_tells_a_snapshot_wait_from_a_lock_wait(db):
    victim, watcher = db.connect(), db.connect()
    with OldSnapshot(db) as old:
        try:
            with Watchdog(watcher, victim.get_backend_pid(), lock_timeout=0.2, snapshot_wait_timeout=0.5) as dog:
                with pytest.raises(psycopg2.errors.QueryCanceled), victim.cursor() as cur:
                    cur.execute('CREATE INDEX CONCURRENTLY idx_wd ON payments (status)')
            assert dog.reason == SNAPSHOT and dog.waited[LOCK] == 0.0
            assert dog.blockers[0]['pid'] == old.conn.get_backend_pid() and dog.blockers[0]['wait'] == SNAPSHOT
        finally:
            victim.close()
            watcher.close()
    db.query('DROP INDEX CONCURRENTLY IF EXISTS idx_wd')


def test_watchdog_without_limits_never_cancels(db):
    victim, watcher = db.connect(), db.connect()
    try:
        with Watchdog(watcher, victim.get_backend_pid(), 0, 0) as dog, victim.cursor() as cur:
            cur.execute('SELECT pg_sleep(0.3)')
        assert dog.reason is None and dog.blockers == []
    finally:
        victim.close()
        watcher.close()

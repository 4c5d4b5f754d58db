"""The post-deploy watch and its guard, against real servers and real sessions (no wall-clock thresholds):

* an index on a column the application updates ends HOT updates: the HOT ratio drops, the guard trips, and
  rollback mode drops the index (DROP INDEX CONCURRENTLY, verified absent) and says why, with numbers;
* a quiet deploy passes the watch; two runs leave two run records and `latest`;
* a lock pile-up during the watch fails it, naming the blocker.
"""
import json
import textwrap
import threading

import psycopg2
import pytest
import yaml

import demo_data
from helpers.modules import run_module
from helpers.playbooks import SIX, playbook, recap
from helpers.servers import params, temporary_server
from helpers.sessions import wait_until

from ansible_collections.chefcloud.pgindex.plugins.module_utils import watch

WATCH = ('-e', 'pgindex_watch_duration=4', '-e', 'pgindex_watch_interval=1', '-e', 'pgindex_watch_snapshot_window=2',
         '-e', 'pgindex_progress_interval=1')


class UpdateWorkload(object):
    """An application updating the same payments rows over and over, in its own session and thread."""

    def __init__(self, db, statement='UPDATE payments SET amount = amount + 0.01 WHERE id = %s', rows=40):
        self.conn = db.connect(application_name='test-workload')
        self.statement, self.rows = statement, rows
        self.stop = threading.Event()
        self.updates = 0
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        try:
            with self.conn.cursor() as cur:
                while not self.stop.is_set():
                    cur.execute(self.statement, (1 + self.updates % self.rows,))
                    self.updates += 1
                    self.stop.wait(0.002)
        except psycopg2.Error as exc:
            self.error = exc

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(30)
        self.conn.close()


def changeset(tmp_path, indexes, name='hot_test'):
    path = tmp_path / ('%s.yml' % name)
    path.write_text(yaml.safe_dump(dict(pgindex_changeset_name=name, pgindex_indexes=indexes)))
    return str(path)


def reports(report_dir, changeset_name):
    return sorted(p.name for p in report_dir.glob('%s.local-db.*.json' % changeset_name))


def latest(report_dir, changeset_name):
    return json.loads((report_dir / ('%s.local-db.latest.json' % changeset_name)).read_text())


def test_an_index_on_an_updated_column_kills_hot_updates_and_the_guard_rolls_it_back(db, tmp_path):
    path = changeset(tmp_path, [dict(
        name='idx_payments_amount', table='payments', columns=['amount'],
        verify=dict(query='SELECT id FROM payments WHERE amount = %(amount)s', params=dict(amount=1.5)))])
    with UpdateWorkload(db) as workload:
        wait_until(db, "SELECT n_tup_upd > 0 FROM pg_stat_user_tables WHERE relname = 'payments'")
        rc, out = playbook(db, 'playbooks/deploy_indexes.yml', '-i', 'inventories/local', '-e', 'pgindex_changeset_file=%s' % path,
                           '-e', 'pgindex_report_dir=%s' % tmp_path, '-e', 'pgindex_watch_on_regression=rollback',
                           '-e', 'pgindex_watch_min_updates=20', '-e', 'pgindex_plan_check=warn', *WATCH)
    assert workload.error is None, workload.error
    assert rc != 0 and recap(out)['failed'] == 1, out
    assert 'Traceback' not in out
    # the table is left without the index, and the run says why
    assert db.index('idx_payments_amount') is None
    assert db.indexes_on('payments') == ['payments_pkey']
    assert 'the post-deploy watch regressed on local-db: HOT-update ratio of public.payments fell from' in out
    assert 'rolled back: dropped public.idx_payments_amount, verified absent' in out
    assert 'watch sample 1 at ' in out and 'TRIPPED: hot_ratio public.payments' in out
    report = latest(tmp_path, 'hot_test')
    watch = report['watch']
    assert watch['verdict'] == 'regressed' and watch['rollback'] is True
    (trip,) = [t for t in watch['tripped'] if t['signal'] == 'hot_ratio']
    assert trip['table'] == 'public.payments' and trip['before'] - trip['value'] > 20 and trip['updates'] >= 20
    assert report['rollback']['rolled_back'] is True and report['rollback']['verified_absent'] is True
    assert report['rollback']['indexes'] == ['public.idx_payments_amount']
    created = [c for c in report['success_criteria'] if c['criterion'] == 'All indexes created'][0]
    assert created['status'] == 'fail' and created['measured'] == '0/1'
    executed = [(q['phase'], q['sql']) for q in report['executed_sql']]
    assert ('deploy', 'CREATE INDEX CONCURRENTLY idx_payments_amount ON public.payments USING btree (amount)') in executed \
        or any(p == 'deploy' and s.startswith('CREATE INDEX CONCURRENTLY') for p, s in executed), executed
    assert any(p == 'rollback' and s.startswith('DROP INDEX CONCURRENTLY') for p, s in executed), executed
    assert report['ok'] is False and any('HOT-update ratio of public.payments' in p for p in report['problems'])
    markdown = (tmp_path / 'hot_test.local-db.latest.md').read_text()
    assert 'Rolled back by the guard: HOT-update ratio of public.payments' in markdown
    assert 'tripped: **hot_ratio** on public.payments' in markdown


def test_a_quiet_deploy_passes_the_watch_and_two_runs_leave_two_reports_and_latest(db, tmp_path):
    deploy = ('playbooks/deploy_indexes.yml', '-i', 'inventories/local', '-e', 'pgindex_report_dir=%s' % tmp_path,
              '-e', 'pgindex_watch_on_regression=fail', *WATCH)
    rc, out = playbook(db, *deploy)
    assert rc == 0, out
    assert 'watch sample 1 at ' in out and 'TRIPPED' not in out
    first = latest(tmp_path, '001_franchise_indexes')
    assert first['watch']['verdict'] == 'pass' and first['watch']['enabled'] is True
    assert sorted(first['watch']['new_indexes']) == sorted('public.' + n for n in SIX)
    assert len(first['watch']['samples']) >= 2
    criteria = dict((c['criterion'], c['status']) for c in first['success_criteria'])
    assert criteria['All indexes created'] == 'pass' and criteria['No deployment errors'] == 'pass'
    assert criteria['No application errors'] == 'pass' and criteria['Index usage confirmed'] == 'pass'
    assert first['operator']['name'] and first['operator']['source'] == 'local user'
    assert len([q for q in first['executed_sql'] if q['sql'].startswith('CREATE INDEX CONCURRENTLY')]) == 6

    rc, out = playbook(db, *deploy)
    assert rc == 0, out
    runs = reports(tmp_path, '001_franchise_indexes')
    assert 'latest' in ' '.join(runs) and len(runs) == 3, runs       # two run records + latest
    records = [json.loads((tmp_path / name).read_text()) for name in runs if '.latest.' not in name]
    assert sorted(r['started_at'] for r in records) == [r['started_at'] for r in sorted(records, key=lambda r: r['started_at'])]
    second = latest(tmp_path, '001_franchise_indexes')
    assert second['started_at'] == max(r['started_at'] for r in records)
    assert [row['action'] for row in second['indexes']] == ['none'] * 6
    assert [row['action'] for row in min(records, key=lambda r: r['started_at'])['indexes']] == ['created'] * 6
    assert second['watch']['verdict'] == 'pass' and second['watch']['new_indexes'] == []


WATCH_PLAYBOOK = textwrap.dedent('''\
    - hosts: localhost
      gather_facts: false
      tasks:
        - name: Snapshot
          chefcloud.pgindex.pg_index_watch:
            mode: snapshot
            indexes: [{name: idx_payments_org_status_created, table: payments}]
            window: 0
          register: before
        - name: Watch
          chefcloud.pgindex.pg_index_watch:
            indexes: [{name: idx_payments_org_status_created, table: payments}]
            snapshot: "{{ before.snapshot }}"
            duration: 3
            interval: 1
            on_regression: fail
            thresholds: {max_lock_waiters: 2}
    ''')


def test_a_lock_pile_up_fails_the_watch_and_names_the_blocker(db, tmp_path):
    blocker = db.connect(application_name='nightly-report')
    blocker.autocommit = False
    with blocker.cursor() as cur:
        cur.execute('LOCK TABLE payments IN SHARE MODE')
    waiters = []
    try:
        for number in range(3):
            conn = db.connect(application_name='checkout', options='-c statement_timeout=0 -c lock_timeout=0')
            thread = threading.Thread(target=lambda c=conn: c.cursor().execute(
                'UPDATE payments SET status = status WHERE id = 1'), daemon=True)
            thread.start()
            waiters.append((number, conn, thread))
        wait_until(db, "SELECT count(*) = 3 FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                       " AND application_name = 'checkout'")
        (tmp_path / 'watch.yml').write_text(WATCH_PLAYBOOK)
        rc, out = playbook(db, str(tmp_path / 'watch.yml'))
    finally:
        blocker.rollback()
        blocker_pid = blocker.get_backend_pid()
        blocker.close()
        for _number, conn, thread in waiters:
            thread.join(30)
            conn.close()
    assert rc != 0, out
    assert 'Traceback' not in out
    assert '3 sessions wait on locks (limit 2); blocked by pid %d (user' % blocker_pid in out
    assert "application 'nightly-report', idle in transaction" in out and 'holding ShareLock' in out
    assert 'LOCK TABLE payments IN SHARE MODE' in out


def test_benefit_pg_stat_statements_calls_of_the_verification_query_are_the_applications(tmp_path):
    """On a server with pg_stat_statements loaded, the watch counts the application's executions of the change set's
    verification query between two readings (its own timed executions are subtracted)."""
    with temporary_server('test-watch-pgss', settings={'shared_preload_libraries': 'pg_stat_statements'}) as server:
        conn = psycopg2.connect(server.dsn())
        conn.autocommit = True
        conn.cursor().execute('CREATE DATABASE watch')
        conn.close()
        conn = psycopg2.connect(server.dsn('watch'))
        conn.autocommit = True
        if conn.server_version < 140000:
            conn.close()
            pytest.skip('the query identifier that matches a verification query to pg_stat_statements '
                        '(compute_query_id, EXPLAIN VERBOSE) exists from PostgreSQL 14 on')
        conn.cursor().execute('CREATE EXTENSION pg_stat_statements')
        demo_data.load(conn, 2000, log=lambda *a: None)
        query = 'SELECT * FROM payments WHERE org_id = %(org)s AND status = %(status)s'
        item = dict(name='idx_payments_org_status_created', table='payments', columns=['org_id', 'status'],
                    verify=dict(query=query, params=dict(org='ORG_00001', status='captured')))
        args = dict(params(server, 'watch'), mode='sample', indexes=[item], latency_samples=3)
        failed, first = run_module('pg_index_watch', args)
        assert not failed, first
        for _attempt in range(7):                     # the application
            conn.cursor().execute("SELECT * FROM payments WHERE org_id = 'ORG_00002' AND status = 'pending'")
        conn.close()
        failed, second = run_module('pg_index_watch', args)
        assert not failed, second
    a, b = first['reading'], second['reading']
    assert a['statements']['status'] == 'reported' and a['statements']['queries']['idx_payments_org_status_created']['query_identifier']
    win = watch.window(a, b, watch.own_scans([a]))
    stats = win['statements']['idx_payments_org_status_created']
    assert stats == dict(calls=10, app_calls=7, own_calls=3, mean_ms=stats['mean_ms']) and stats['mean_ms'] > 0

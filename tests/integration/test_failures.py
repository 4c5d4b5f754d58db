"""Every failure tells the truth (issue 11): playbook runs against real servers that fail for real,
asserting the exit code, the play's last message and the report."""
import json
import re

import pytest
import yaml

from helpers.playbooks import playbook


def changeset(tmp_path, indexes, name='ft'):
    """A change set file with ``indexes`` (YAML text of the list items)."""
    path = tmp_path / ('%s.yml' % name)
    path.write_text('pgindex_changeset_name: %s\npgindex_indexes:\n%s' % (name, indexes))
    return path


def deploy(db, tmp_path, path, *args, entry='deploy_indexes'):
    return playbook(db, 'playbooks/%s.yml' % entry, '-i', 'inventories/local', '-e', 'pgindex_changeset_file=%s' % path,
                    '-e', 'pgindex_report_dir=%s' % (tmp_path / 'reports'), *args)


def last_message(out):
    """The msg of the last failed task (the play's final word)."""
    failures = re.findall(r'^fatal: .*?\n((?:.*\n)*?)(?=\S|\Z)', out, re.M)
    assert failures, out
    try:  # the callback prints the result as YAML: read msg as YAML reads it (quotes undone)
        message = yaml.safe_load(failures[-1]).get('msg')
    except (yaml.YAMLError, AttributeError):
        message = None
    return ' '.join(str(message if message is not None else failures[-1]).split())


def report(tmp_path, name='ft'):
    path = tmp_path / 'reports' / ('%s.local-db.latest.json' % name)
    return json.loads(path.read_text()) if path.exists() else None


UNIQUE_ON_DUPLICATES = '''  - name: idx_fr_overview_org_period
    table: franchise_overview
    columns: [org_id, period]
  - name: idx_payments_status_unique
    table: payments
    columns: [status]
    unique: true
'''


def test_unique_on_duplicates_reports_and_fails_with_the_cause(db, tmp_path):
    path = changeset(tmp_path, UNIQUE_ON_DUPLICATES)
    rc, out = deploy(db, tmp_path, path)
    assert rc != 0, out
    last = last_message(out)
    assert 'could not create unique index "idx_payments_status_unique"' in last, last
    assert 'duplicate keys' in last
    assert 'Traceback' not in out and "has no attribute" not in out
    data = report(tmp_path)
    assert data is not None, out
    assert data['ok'] is False and data['build']['failed'] is True
    rows = {r['name']: r for r in data['build']['indexes']}
    assert rows['idx_payments_status_unique']['failed'] is True
    assert rows['idx_payments_status_unique']['error'].startswith('UniqueViolation: could not create unique index')
    assert isinstance(rows['idx_payments_status_unique']['duration_s'], float)
    assert db.index('idx_payments_status_unique') is None


def cause(out):
    """The cause in the play's last message (after the fleet's state)."""
    last = last_message(out)
    return last.split('max_fail_percentage 0;', 1)[-1].split('):', 1)[-1].strip(" '")


TWO = '''  - name: idx_fr_overview_org_period
    table: franchise_overview
    columns: [org_id, period]
  - name: idx_po_org_status_created
    table: %s
    columns: [org_id, status, created_at]
'''


def refusal(db, kind):
    """Set up the database so that the deploy (or rollback) of TWO must refuse; return (entry, table, extra args,
    the text the cause must hold)."""
    if kind == 'rollback_other_table':
        db.query('CREATE INDEX idx_po_org_status_created ON payments (org_id)')
        return 'rollback_indexes', 'purchase_orders', [], 'exists on table public.payments'
    if kind == 'rollback_misspelled_table':
        db.query('CREATE INDEX idx_po_org_status_created ON purchase_orders (org_id, status, created_at)')
        return 'rollback_indexes', 'purchase_ordrs', [], 'table public.purchase_ordrs does not exist'
    if kind == 'deploy_missing_table':
        return 'deploy_indexes', 'purchase_ordrs', [], 'table public.purchase_ordrs does not exist'
    if kind == 'deploy_drift':
        db.query('CREATE INDEX idx_po_org_status_created ON purchase_orders (org_id)')
        return 'deploy_indexes', 'purchase_orders', ['-e', 'pgindex_on_drift=fail'], 'idx_po_org_status_created'
    if kind == 'deploy_other_table':
        db.query('CREATE INDEX idx_po_org_status_created ON payments (org_id)')
        return 'deploy_indexes', 'purchase_orders', [], 'exists on table public.payments'
    if kind == 'deploy_invalid':
        from helpers.sessions import make_invalid_index
        make_invalid_index(db, 'CREATE INDEX CONCURRENTLY idx_po_org_status_created ON purchase_orders'
                               ' (org_id, status, created_at)')
        return 'deploy_indexes', 'purchase_orders', ['-e', 'pgindex_on_invalid=fail'], 'INVALID'
    raise AssertionError(kind)


@pytest.mark.parametrize('kind', ['rollback_other_table', 'rollback_misspelled_table', 'deploy_missing_table',
                                  'deploy_drift', 'deploy_other_table', 'deploy_invalid'])
def test_dry_run_fails_where_the_real_run_fails(db, tmp_path, kind):
    entry, table, extra, expected = refusal(db, kind)
    path = changeset(tmp_path, TWO % table)
    before = db.query("SELECT indexname FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1")
    rc_check, out_check = deploy(db, tmp_path, path, '--check', *extra, entry=entry)
    assert rc_check != 0, out_check
    assert 'check mode, nothing changed' not in out_check
    dry = cause(out_check)
    assert expected in dry, out_check
    assert db.query("SELECT indexname FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1") == before
    rc_real, out_real = deploy(db, tmp_path, path, *extra, entry=entry)
    assert rc_real != 0, out_real
    assert cause(out_real) == dry
    assert 'Traceback' not in out_check + out_real
    assert db.index('idx_fr_overview_org_period') is None    # nothing built before the refusal


# --------------------------------------------------------------------------- faults during the build
import os  # noqa: E402
import subprocess  # noqa: E402
import threading  # noqa: E402

from helpers.playbooks import BIN, ROOT  # noqa: E402
from helpers.sessions import OldSnapshot, wait_until  # noqa: E402

BUILD_APP = 'chefcloud.pgindex/pg_index_set'
# The preflight would (rightly) stop a deploy that a blocking session is in the way of: these tests
# drive the build itself into the fault, so they leave the activity checks out.
NO_ACTIVITY_CHECKS = ['-e', '{"pgindex_preflight_checks": ["server", "privileges", "tables", "indexes"]}',
                      '-e', 'pgindex_latency_sampling=false']


class Background(object):
    """ansible-playbook in the background (to act on the database while it builds)."""

    def __init__(self, db, tmp_path, path, *args, entry='deploy_indexes', reports='reports'):
        env = {k: v for k, v in os.environ.items() if not k.startswith(('PG', 'ANSIBLE_'))}
        env.update(db.env, ANSIBLE_CONFIG=str(ROOT / 'ansible.cfg'), ANSIBLE_NOCOLOR='1')
        self.proc = subprocess.Popen(
            [str(BIN / 'ansible-playbook'), 'playbooks/%s.yml' % entry, '-i', 'inventories/local',
             '-e', 'pgindex_changeset_file=%s' % path, '-e', 'pgindex_report_dir=%s' % (tmp_path / reports), *args],
            cwd=str(ROOT), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.out = None
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        self.out = self.proc.stdout.read()

    def wait(self, timeout=300):
        rc = self.proc.wait(timeout)
        self.thread.join(10)
        return rc, self.out


def waiting_builder(db, index):
    """pid of our CREATE INDEX CONCURRENTLY of ``index`` once it waits (for an old snapshot or a lock)."""
    query = ("SELECT pid FROM pg_stat_activity WHERE application_name = %s AND wait_event_type = 'Lock'"
             " AND query LIKE 'CREATE INDEX CONCURRENTLY%%' AND query LIKE %s")
    wait_until(db, 'SELECT EXISTS (%s)' % query, (BUILD_APP, '%%%s%%' % index), timeout=120)
    return db.query(query, (BUILD_APP, '%%%s%%' % index))[0][0]


def invalid_indexes(db):
    return [r[0] for r in db.query('SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid'
                                   ' WHERE NOT i.indisvalid ORDER BY 1')]


def test_build_session_terminated_mid_build_is_reported_and_cleaned_up(db, tmp_path):
    path = changeset(tmp_path, TWO % 'purchase_orders')
    with OldSnapshot(db):
        run = Background(db, tmp_path, path, '-e', 'pgindex_parallelism=1', *NO_ACTIVITY_CHECKS)
        pid = waiting_builder(db, 'idx_fr_overview_org_period')
        db.query('SELECT pg_terminate_backend(%s)', (pid,))
    rc, out = run.wait()
    assert rc != 0, out
    last = cause(out)
    assert 'idx_fr_overview_org_period' in last and 'terminated or its connection lost' in last, last
    assert invalid_indexes(db) == []
    data = report(tmp_path)
    row = {r['name']: r for r in data['build']['indexes']}['idx_fr_overview_org_period']
    assert row['failed'] and row['error'].startswith('OperationalError: server closed the connection'), row
    assert row['cleaned_up'] == ['public.idx_fr_overview_org_period']
    assert row['queries'][-1] == 'DROP INDEX CONCURRENTLY IF EXISTS "public"."idx_fr_overview_org_period"'
    assert {r['name']: r['action'] for r in data['build']['indexes']}['idx_po_org_status_created'] == 'not started'
    assert data['build']['msg'] == last


def test_lock_timeout_exhausted_names_the_blocker(db, tmp_path):
    path = changeset(tmp_path, TWO % 'purchase_orders')
    blocker = db.connect(application_name='nightly-report')
    blocker.autocommit = False
    try:
        with blocker.cursor() as cur:
            cur.execute('LOCK TABLE franchise_overview IN SHARE MODE')
        rc, out = deploy(db, tmp_path, path, '-e', 'pgindex_lock_timeout=300ms', '-e', 'pgindex_retries=1',
                         '-e', 'pgindex_retry_delay=0.05', *NO_ACTIVITY_CHECKS)
        pid = blocker.get_backend_pid()
    finally:
        blocker.rollback()
        blocker.close()
    assert rc != 0, out
    last = cause(out)
    assert 'lock_timeout (0.3s) waiting for a lock on the table' in last and 'Gave up after 2 attempts' in last, last
    assert 'pid %d' % pid in last and "application='nightly-report'" in last
    row = {r['name']: r for r in report(tmp_path)['build']['indexes']}['idx_fr_overview_org_period']
    assert row['failed'] and row['attempts'] == 2 and row['blockers'][0]['pid'] == pid
    assert invalid_indexes(db) == []


def test_snapshot_wait_timeout_is_reported(db, tmp_path):
    path = changeset(tmp_path, TWO % 'purchase_orders')
    with OldSnapshot(db) as old:
        pid = old.conn.get_backend_pid()
        rc, out = deploy(db, tmp_path, path, '-e', 'pgindex_snapshot_wait_timeout=1s', '-e', 'pgindex_parallelism=1',
                         *NO_ACTIVITY_CHECKS)
    assert rc != 0, out
    last = cause(out)
    assert 'snapshot_wait_timeout (1.0s) waiting for older transactions to finish' in last, last
    assert 'pid %d' % pid in last
    assert invalid_indexes(db) == []
    row = {r['name']: r for r in report(tmp_path)['build']['indexes']}['idx_fr_overview_org_period']
    assert row['failed'] and row['cleaned_up'] == ['public.idx_fr_overview_org_period']


def test_two_deploys_at_once_the_second_is_refused_the_first_finishes(db, tmp_path):
    path = changeset(tmp_path, TWO % 'purchase_orders')
    old = OldSnapshot(db)
    try:
        first = Background(db, tmp_path, path, '-e', 'pgindex_parallelism=1', *NO_ACTIVITY_CHECKS[2:],
                           reports='first')
        pid = waiting_builder(db, 'idx_fr_overview_org_period')
        rc, out = deploy(db, tmp_path, path, '-e', 'pgindex_latency_sampling=false')
    finally:
        old.end()
    rc_first, out_first = first.wait()
    assert rc != 0, out
    last = cause(out)
    assert 'preflight failed on local-db' in last and 'index_builds' in last and str(pid) in last, last
    assert report(tmp_path) is not None     # the refused run wrote its report too
    assert rc_first == 0, out_first
    assert db.index('idx_fr_overview_org_period')[0] is True and db.index('idx_po_org_status_created')[0] is True


@pytest.fixture
def own_server():
    """A server of this test's own (it gets restarted), with the demo schema in database restart_db."""
    import psycopg2

    import demo_data
    from conftest import Database, admin
    from helpers.servers import temporary_server
    with temporary_server('restart') as server:
        admin(server, 'CREATE DATABASE restart_db')
        conn = psycopg2.connect(server.dsn('restart_db'))
        demo_data.load(conn, 3000, log=lambda *a: None)
        conn.close()
        yield server, Database(server, 'restart_db')


def test_server_restart_mid_build_names_the_leftover_then_the_next_run_rebuilds_it(own_server, tmp_path):
    server, db = own_server
    path = changeset(tmp_path, TWO % 'purchase_orders')
    old = OldSnapshot(db)       # holds the build in its wait, after the index entered the catalog
    run = Background(db, tmp_path, path, '-e', 'pgindex_parallelism=1', *NO_ACTIVITY_CHECKS)
    waiting_builder(db, 'idx_fr_overview_org_period')
    server._pg_ctl('-l', server.log_file, '-m', 'fast', '-w', '-t', '60', '-s', 'restart')
    rc, out = run.wait()
    old.conn.close()
    assert rc != 0, out
    last = cause(out)
    drop = 'DROP INDEX CONCURRENTLY IF EXISTS "public"."idx_fr_overview_org_period";'
    assert 'public.idx_fr_overview_org_period left INVALID: run %s' % drop in last, last
    assert 'Traceback' not in out
    assert invalid_indexes(db) == ['idx_fr_overview_org_period']
    data = report(tmp_path)
    assert data['build']['leftovers'] == [dict(index='idx_fr_overview_org_period', schema='public', drop_sql=drop,
                                               observed=True)]
    rc, out = deploy(db, tmp_path, path, *NO_ACTIVITY_CHECKS)
    assert rc == 0, out
    assert 'idx_fr_overview_org_period on public.franchise_overview: rebuilt, valid' in out
    assert invalid_indexes(db) == [] and db.index('idx_fr_overview_org_period')[0] is True


def test_dry_run_fails_like_the_real_run_while_another_session_builds_the_index(db, tmp_path):
    from helpers.sessions import BackgroundStatement
    path = changeset(tmp_path, TWO % 'purchase_orders')
    old = OldSnapshot(db)
    other = BackgroundStatement(db, 'CREATE INDEX CONCURRENTLY idx_po_org_status_created ON purchase_orders'
                                    ' (org_id, status, created_at)')
    try:
        wait_until(db, "SELECT EXISTS (SELECT 1 FROM pg_stat_progress_create_index WHERE pid = %s)", (other.pid,))
        rc_check, out_check = deploy(db, tmp_path, path, '--check')
        rc_real, out_real = deploy(db, tmp_path, path)
    finally:
        old.end()
        other.join()
    assert rc_check != 0 and rc_real != 0, out_check
    dry = cause(out_check)
    assert 'index_builds' in dry and str(other.pid) in dry, dry
    seconds = re.compile(r'\d+(\.\d+)? ?s\b')     # how long the other build has run differs, nothing else
    assert seconds.sub('N s', cause(out_real)) == seconds.sub('N s', dry)
    assert db.index('idx_fr_overview_org_period') is None

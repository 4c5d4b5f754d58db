"""pg_preflight end to end (the module as Ansible runs it, and the deploy/rollback playbooks), against
real servers: a standby, a 14.3, an archiving server, other sessions that get in the way, a tiny
tablespace filesystem."""
import os
import pwd
import subprocess
import time

import psycopg2
import pytest
from psycopg2 import sql

import pgserver
from conftest import admin
from ansible_collections.chefcloud.pgindex.plugins.module_utils.preflight import human_bytes
from helpers.modules import run_module
from helpers.sessions import BackgroundStatement, OldSnapshot, wait_for_build_waiting, wait_until
from helpers.playbooks import SIX, playbook, six_state
from helpers.servers import params as server_params, temporary_server

OVERVIEW = dict(name='idx_fr_overview_org_period', table='franchise_overview', columns=['org_id', 'period'])
PAYMENTS = dict(name='idx_payments_org_status_created', table='payments', columns=['org_id', 'status', 'created_at'])
INVENTORY = dict(name='idx_inv_batches_org_sku', table='inventory_batches', columns=['org_id', 'sku'])
ORDERS = dict(name='idx_po_org_status_created', table='purchase_orders', columns=['org_id', 'status', 'created_at'])


def preflight(params, indexes, check_mode=False, **args):
    """(failed, result, {check name: check})"""
    failed, result = run_module('pg_preflight', dict(params, indexes=indexes, **args), check_mode=check_mode)
    return failed, result, dict((c['name'], c) for c in result.get('checks', []))


def catalog_snapshot(db):
    return db.query("SELECT c.relname, c.relkind, coalesce(i.indisvalid, true) FROM pg_class c"
                    " LEFT JOIN pg_index i ON i.indexrelid = c.oid"
                    " WHERE c.relnamespace = 'public'::regnamespace ORDER BY 1")


# --- server -----------------------------------------------------------------------------------------

@pytest.fixture
def standby(pg_server):
    with temporary_server('preflight-standby', standby_of=pg_server) as server:
        yield server


def test_standby_is_refused_and_seen_from_the_primary(db, standby):
    failed, result, checks = preflight(server_params(standby, db.name), [OVERVIEW])
    assert failed and result['failed_checks'] == ['recovery']
    assert checks['recovery']['message'].startswith('the server is a standby (in recovery)')
    assert {s['group'] for s in result['skipped_checks']} == {'indexes', 'space', 'replication', 'archiving'}

    wait_until(db, "SELECT count(*) = 1 FROM pg_stat_replication WHERE state = 'streaming' AND replay_lsn IS NOT NULL")
    failed, result, checks = preflight(db.params, [OVERVIEW], checks=['replication'])
    assert not failed and checks['replication']['status'] == 'pass'
    assert checks['replication']['message'].startswith('1 standby(s) connected: walreceiver (127.0.0.1, streaming, async')
    assert checks['replication']['data']['standbys'][0]['application_name'] == 'walreceiver'

    # Replay paused on the standby: the primary moves on, the standby falls behind.
    standby.psql('SELECT pg_wal_replay_pause()')
    try:
        db.query('CREATE TABLE lag_maker AS SELECT generate_series(1, 1000) AS i')
        wait_until(db, 'SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) > 0 FROM pg_stat_replication')
        failed, result, checks = preflight(db.params, [OVERVIEW], checks=['replication'], max_replication_lag='0')
        assert not failed and checks['replication']['status'] == 'warn'
        assert 'standby walreceiver (127.0.0.1) is ' in checks['replication']['message']
        assert 'behind in replay (more than max_replication_lag 0)' in checks['replication']['message']
    finally:
        standby.psql('SELECT pg_wal_replay_resume()')


@pytest.fixture
def pg143():
    with temporary_server('preflight-pg143', version='14.3.0-beta.6') as server:
        server.psql('CREATE TABLE franchise_overview (org_id text, period text)')
        yield server


def test_minimum_version_and_the_broken_14_3(db, pg143):
    failed, result, checks = preflight(db.params, [OVERVIEW], min_version='99', checks=['server'])
    assert failed and result['failed_checks'] == ['version']
    assert checks['version']['message'].startswith('PostgreSQL %s is older than the minimum 99 (min_version'
                                                   % result['server']['version'])
    for check_mode in (False, True):
        failed, result, checks = preflight(server_params(pg143), [OVERVIEW], check_mode=check_mode)
        assert failed and result['failed_checks'] == ['version']
        assert checks['version']['message'].startswith(
            'PostgreSQL 14.3: CREATE INDEX CONCURRENTLY on 14.0 to 14.3 could miss rows')
    # dropping is allowed there: a warning only
    failed, result, checks = preflight(server_params(pg143), [OVERVIEW], state='absent')
    assert not failed and checks['version']['status'] == 'warn'


@pytest.fixture
def archiving_server():
    with temporary_server('preflight-archiving', settings={'archive_mode': 'on', 'archive_command': 'true'}) as server:
        yield server


def archived(server, column):
    return int(server.psql('SELECT %s FROM pg_stat_archiver' % column) or 0)


def switch_wal(server):
    server.psql('CREATE TABLE IF NOT EXISTS t (i int); INSERT INTO t VALUES (1); SELECT pg_switch_wal()')


def test_wal_archiving_health(archiving_server):
    params = server_params(archiving_server)
    switch_wal(archiving_server)
    wait_until_true(lambda: archived(archiving_server, 'archived_count') > 0)
    failed, result, checks = preflight(params, [], checks=['archiving'])
    assert not failed and checks['archiving']['status'] == 'pass'
    assert checks['archiving']['message'].startswith('WAL archiving works (archive_mode = on): last archived 0000')
    assert 'archive_command' not in str(checks['archiving']['data'])

    archiving_server.psql("ALTER SYSTEM SET archive_command = 'false'; SELECT pg_reload_conf()")
    try:
        switch_wal(archiving_server)
        wait_until_true(lambda: archived(archiving_server, 'failed_count') > 0)
        failed, result, checks = preflight(params, [], checks=['archiving'])
    finally:  # a failing archiver slows the shutdown down
        archiving_server.psql("ALTER SYSTEM SET archive_command = 'true'; SELECT pg_reload_conf()")
    assert failed and checks['archiving']['status'] == 'fail'
    assert checks['archiving']['message'].startswith('WAL archiving is failing: the last attempt, for 0000')
    assert checks['archiving']['data']['failing'] is True and checks['archiving']['data']['failed_count'] >= 1


def wait_until_true(predicate, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError('timed out')


# --- privileges and tables ----------------------------------------------------------------------------

@pytest.fixture
def deployer(db):
    """A login role that owns payments only, in a database where PUBLIC may not create in public."""
    role = 'deployer_%s' % db.name[-8:]
    db.query(sql.SQL('CREATE ROLE {} LOGIN').format(sql.Identifier(role)))
    db.query(sql.SQL('ALTER TABLE payments OWNER TO {}; REVOKE CREATE ON SCHEMA public FROM PUBLIC').format(
        sql.Identifier(role)))
    yield role
    db.query(sql.SQL('REASSIGN OWNED BY {} TO postgres; DROP OWNED BY {}; DROP ROLE {}').format(
        sql.Identifier(role), sql.Identifier(role), sql.Identifier(role)))


def test_a_role_that_does_not_own_the_table_is_told_who_does(db, deployer):
    params = dict(db.params, login_user=deployer)
    before = catalog_snapshot(db)
    failed, result, checks = preflight(params, [OVERVIEW, PAYMENTS])
    assert failed and result['failed_checks'] == ['privileges', 'index public.idx_fr_overview_org_period']
    message = checks['privileges']['message']
    assert ('public.franchise_overview is owned by postgres, and %s is neither postgres nor a member of it (CREATE '
            'and DROP INDEX need ownership): run as postgres (session_role) or GRANT postgres TO %s'
            % (deployer, deployer)) in message
    assert '%s has no CREATE privilege on schema public (CREATE INDEX needs it)' % deployer in message
    assert 'public.payments' not in message
    assert checks['index public.idx_fr_overview_org_period']['message'] == (
        'not checked: %s does not own table public.franchise_overview (see the privileges check)' % deployer)
    # data_directory is hidden from this role: the space check says so and how to fix it
    assert checks['space']['status'] == 'warn'
    assert 'data_directory is only shown to superusers and members of pg_read_all_settings' in checks['space']['message']
    assert [loc['path'] for loc in result['space']['locations']] == [None, None]
    failed, result, checks = preflight(params, [PAYMENTS], data_directory='/srv/pg/data')
    assert [loc['path'] for loc in result['space']['locations']] == ['/srv/pg/data', '/srv/pg/data/pg_wal']
    assert catalog_snapshot(db) == before


def test_a_view_is_not_a_table(db):
    db.query('CREATE VIEW v_payments AS SELECT * FROM payments')
    failed, result, checks = preflight(db.params, [dict(PAYMENTS, table='v_payments'), OVERVIEW])
    assert failed and result['failed_checks'] == ['tables', 'index public.idx_payments_org_status_created']
    assert checks['tables']['message'] == ('public.v_payments is a view: indexes can only be built on tables, '
                                           'partitioned tables and materialized views')
    assert checks['index public.idx_fr_overview_org_period']['status'] == 'pass'


# --- indexes --------------------------------------------------------------------------------------------

def test_invalid_drifted_redundant_and_identical_indexes(db):
    with pytest.raises(psycopg2.errors.UniqueViolation):
        db.query('CREATE UNIQUE INDEX CONCURRENTLY idx_payments_status_u ON payments (status)')
    db.query('CREATE INDEX idx_fr_overview_org_period ON franchise_overview (org_id)')
    db.query('CREATE INDEX idx_other ON inventory_batches (org_id, sku)')
    db.query('CREATE INDEX idx_po_org_status_created ON purchase_orders (org_id, status, created_at)')
    before = catalog_snapshot(db)
    unique = dict(name='idx_payments_status_u', table='payments', columns=['status'], unique=True)
    for check_mode in (True, False):
        failed, result, checks = preflight(db.params, [unique, OVERVIEW, INVENTORY, ORDERS], check_mode=check_mode)
        assert failed and result['failed_checks'] == ['index public.idx_fr_overview_org_period']
        invalid = checks['index public.idx_payments_status_u']
        assert (invalid['status'], invalid['data']['state']) == ('warn', 'invalid')
        assert invalid['message'].startswith('INVALID (left by a failed or interrupted build): will be dropped')
        drift = checks['index public.idx_fr_overview_org_period']
        assert drift['data']['state'] == 'drifted'
        assert 'exists with another definition' in drift['message']
        assert drift['data']['existing_definition'].endswith('USING btree (org_id)')
        assert drift['data']['desired_definition'].endswith('USING btree (org_id, period)')
        redundant = checks['index public.idx_inv_batches_org_sku']
        assert (redundant['status'], redundant['data']['state']) == ('warn', 'absent')
        assert 'Redundant: public.idx_other already has the same definition' in redundant['message']
        assert redundant['data']['equivalent_indexes'][0]['index'] == 'public.idx_other'
        identical = checks['index public.idx_po_org_status_created']
        assert (identical['status'], identical['message']) == ('pass', 'present, valid and identical: nothing to do')
        # only what will be built counts for space: the rebuild and the new (redundant) index
        assert [e['index'] for e in result['space']['indexes']] == ['public.idx_payments_status_u',
                                                                    'public.idx_inv_batches_org_sku']
    assert catalog_snapshot(db) == before


def test_an_index_being_built_by_another_session(db):
    snapshot = OldSnapshot(db)
    build = BackgroundStatement(db, 'CREATE INDEX CONCURRENTLY idx_fr_overview_org_period'
                                    ' ON franchise_overview (org_id, period)')
    try:
        wait_for_build_waiting(db, build.pid)
        failed, result, checks = preflight(db.params, [OVERVIEW], checks=['indexes', 'activity'])
        assert failed
        assert set(result['failed_checks']) == {'index public.idx_fr_overview_org_period', 'index_builds'}
        being_built = checks['index public.idx_fr_overview_org_period']
        assert being_built['data']['state'] == 'being built'
        assert 'is being built right now by another session: pid %d' % build.pid in being_built['message']
        builds = checks['index_builds']
        assert 'pid %d (user postgres' % build.pid in builds['message']
        assert 'is running CREATE INDEX CONCURRENTLY on public.franchise_overview' in builds['message']
        assert builds['data']['builds'][0]['pid'] == build.pid
    finally:
        snapshot.end()
        build.join()


# --- activity ---------------------------------------------------------------------------------------------

def test_old_transactions_and_idle_sessions_follow_the_thresholds(db):
    with OldSnapshot(db) as snapshot:
        pid = snapshot.conn.get_backend_pid()
        failed, result, checks = preflight(db.params, [PAYMENTS], checks=['activity'])
        assert not failed
        assert checks['old_transactions']['status'] == 'pass'
        idle = checks['idle_in_transaction']
        assert idle['status'] == 'warn' and 'pid %d (user postgres' % pid in idle['message']
        assert 'holding a snapshot, last query: SELECT 1' in idle['message']
        failed, result, checks = preflight(db.params, [PAYMENTS], checks=['activity'], max_transaction_age='0',
                                           max_idle_in_transaction='0')
        assert failed and result['failed_checks'] == ['old_transactions', 'idle_in_transaction']
        assert checks['old_transactions']['message'].startswith('1 transaction(s) older than 0 (max_transaction_age)')
        session = checks['old_transactions']['data']['sessions'][0]
        assert (session['pid'], session['user'], session['query']) == (pid, 'postgres', 'SELECT 1')
        assert session['xact_age_s'] >= 0 and session['application_name'] is not None


def test_a_forgotten_prepared_transaction(db):
    conn = db.connect()
    conn.autocommit = False
    gid = 'pgindex_forgotten_%s' % db.name
    with conn.cursor() as cur:
        cur.execute("UPDATE payments SET status = status WHERE id = 1")
        cur.execute(sql.SQL('PREPARE TRANSACTION {}').format(sql.Literal(gid)))
    conn.close()
    try:
        failed, result, checks = preflight(db.params, [PAYMENTS], checks=['activity'])
        assert failed and result['failed_checks'] == ['prepared_transactions']
        message = checks['prepared_transactions']['message']
        assert message.startswith("prepared transaction(s) in database %s: '%s' (owner postgres" % (db.name, gid))
        assert "CREATE INDEX CONCURRENTLY waits for it forever" in message
        assert "ROLLBACK PREPARED '%s'" % gid in message
    finally:
        db.query(sql.SQL('ROLLBACK PREPARED {}').format(sql.Literal(gid)))


def test_conflicting_locks_held_and_queued(db):
    holder = db.connect()
    holder.autocommit = False
    with holder.cursor() as cur:
        cur.execute('LOCK TABLE payments IN SHARE ROW EXCLUSIVE MODE')
    try:
        failed, result, checks = preflight(db.params, [PAYMENTS, OVERVIEW])
        assert failed and result['failed_checks'] == ['locks']
        assert checks['locks']['message'].startswith(
            'pid %d (user postgres, idle in transaction, transaction open ' % holder.get_backend_pid())
        assert 'holds SHARE ROW EXCLUSIVE on public.payments running: LOCK TABLE payments' in checks['locks']['message']
        lock = checks['locks']['data']['locks'][0]
        assert (lock['mode'], lock['granted'], lock['table']) == ('ShareRowExclusiveLock', True, 'public.payments')
        # An ALTER TABLE queued behind it: every read of payments now waits; lock_timeout bounds the preflight.
        waiter = BackgroundStatement(db, 'BEGIN; LOCK TABLE payments IN ACCESS EXCLUSIVE MODE; ROLLBACK')
        wait_until(db, "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = %s AND NOT granted)", (waiter.pid,))
        failed, result, checks = preflight(db.params, [PAYMENTS], lock_timeout='200ms',
                                           checks=['tables', 'indexes', 'activity'])
        assert failed
        assert 'waits for ACCESS EXCLUSIVE on public.payments' in checks['locks']['message']
        assert 'lock timeout' in checks['tables']['message'] and 'see the locks check' in checks['tables']['message']
        assert checks['index public.idx_payments_org_status_created']['message'].startswith(
            'not checked: table public.payments stayed locked for longer than lock_timeout 200ms')
    finally:
        holder.rollback()
        holder.close()
    waiter.join()


def test_a_running_vacuum(db):
    db.query('CREATE TABLE vac_t AS SELECT i, md5(i::text) AS v FROM generate_series(1, 20000) i')
    pinner = db.connect()
    pinner.autocommit = False
    with pinner.cursor() as cur:   # an open cursor pins a page that VACUUM (FREEZE) must wait for
        cur.execute('DECLARE c CURSOR FOR SELECT * FROM vac_t')
        cur.execute('FETCH 1 FROM c')
    vacuum = BackgroundStatement(db, 'VACUUM (FREEZE) vac_t')
    try:
        wait_until(db, "SELECT EXISTS (SELECT 1 FROM pg_stat_progress_vacuum WHERE pid = %s)", (vacuum.pid,))
        failed, result, checks = preflight(db.params, [dict(name='idx_vac_t_i', table='vac_t', columns=['i'])],
                                           checks=['activity'])
        assert failed and 'vacuum' in result['failed_checks']
        assert checks['vacuum']['message'].startswith('VACUUM: pid %d (user postgres' % vacuum.pid)
        assert 'on public.vac_t (phase scanning heap)' in checks['vacuum']['message']
        assert checks['locks']['status'] == 'pass'      # the VACUUM's lock is reported once, as a VACUUM
    finally:
        pinner.rollback()
        pinner.close()
    vacuum.join()


def test_bad_input_is_a_message_not_a_traceback(db):
    failed, result, checks = preflight(db.params, [dict(name='idx_a', table='payments', columns=['org_id'],
                                                        method='bogus')])
    assert failed and not checks
    assert result['msg'] == "index idx_a: key 'method' must be one of btree, hash, gin, gist, brin, spgist, got 'bogus'"
    assert 'exception' not in result
    failed, result, checks = preflight(dict(db.params, login_password='hunter2', login_port=1), [OVERVIEW])
    assert failed and result['msg'].startswith('could not connect to PostgreSQL') and 'hunter2' not in str(result)


# --- the playbooks --------------------------------------------------------------------------------------

def test_deploy_prints_the_preflight_summary_before_building(db):
    rc, out = playbook(db, 'playbooks/deploy_indexes.yml', '-i', 'inventories/local', '-e', 'pgindex_verify=false')
    assert rc == 0, out
    flat = ' '.join(out.split())
    assert 'preflight of change set 001_franchise_indexes on local-db: PASS (0 failed, 0 warnings, 22 passed)' in flat
    assert "PASS disk: %s" % db.query('SHOW data_directory')[0][0] in flat
    assert flat.index('preflight of change set') < flat.index('ran: CREATE INDEX CONCURRENTLY')
    assert six_state(db) == {name: True for name in SIX}


@pytest.fixture
def blocker(request, db):
    """Put the database in the state ``request.param`` names; yield extra playbook arguments."""
    kind = request.param
    conn = db.connect()
    conn.autocommit = False
    args = []
    if kind == 'locks':
        with conn.cursor() as cur:
            cur.execute('LOCK TABLE payments IN SHARE ROW EXCLUSIVE MODE')
    elif kind == 'prepared_transactions':
        with conn.cursor() as cur:
            cur.execute('UPDATE payments SET status = status WHERE id = 1')
            cur.execute("PREPARE TRANSACTION 'pgindex_pb_%s'" % db.name)
    elif kind == 'old_transactions':
        conn.set_session(isolation_level='REPEATABLE READ')
        with conn.cursor() as cur:
            cur.execute('SELECT 1')
        args = ['-e', 'pgindex_max_transaction_age=0']
    elif kind == 'version':
        args = ['-e', 'pgindex_min_version=99']
    elif kind == 'backup':
        args = ['-e', 'pgindex_backup_check_command=false']
    yield args
    conn.rollback()
    conn.close()
    if kind == 'prepared_transactions':
        db.query("ROLLBACK PREPARED 'pgindex_pb_%s'" % db.name)


@pytest.mark.parametrize('blocker,message', [
    ('locks', 'holds SHARE ROW EXCLUSIVE on public.payments'),
    ('prepared_transactions', "ROLLBACK PREPARED 'pgindex_pb_"),
    ('old_transactions', 'transaction(s) older than 0 (max_transaction_age)'),
    ('version', 'is older than the minimum 99 (min_version'),
    ('backup', 'the backup check command exited with 1 on local-db'),
], indirect=['blocker'])
def test_each_failing_check_stops_the_deploy_before_any_ddl(db, blocker, message, request):
    kind = request.node.callspec.params['blocker']
    check_mode = ['--check'] if kind in ('version', 'backup') else []
    rc, out = playbook(db, 'playbooks/deploy_indexes.yml', '-i', 'inventories/local', *(blocker + check_mode))
    assert rc != 0, out
    flat = ' '.join(out.split())
    assert 'preflight failed on local-db (%s' % kind in flat and 'nothing was changed' in flat
    assert message in flat
    assert 'CREATE INDEX CONCURRENTLY "' not in flat
    assert six_state(db) == {name: None for name in SIX}


def test_rollback_is_stopped_by_a_conflicting_lock(db):
    db.query('CREATE INDEX idx_payments_org_status_created ON payments (org_id, status, created_at)')
    conn = db.connect()
    conn.autocommit = False
    with conn.cursor() as cur:
        cur.execute('LOCK TABLE payments IN SHARE ROW EXCLUSIVE MODE')
    try:
        rc, out = playbook(db, 'playbooks/rollback_indexes.yml', '-i', 'inventories/local')
    finally:
        conn.rollback()
        conn.close()
    assert rc != 0 and 'preflight failed on local-db (locks)' in ' '.join(out.split()), out
    assert 'ran: DROP INDEX' not in out
    assert db.index('idx_payments_org_status_created')[0] is True


@pytest.fixture
def tiny_tablespace(db):
    """A 4 MiB tmpfs holding 3 MiB of other data, as the default tablespace of the test database."""
    if os.geteuid() != 0:
        pytest.skip('mounting a tmpfs needs root')
    mount = pgserver.cache_dir() / ('tiny-%s' % db.name)
    mount.mkdir()
    subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', str(mount)], check=True)
    name = 'tiny_%s' % db.name
    try:
        (mount / 'other_data').write_bytes(b'\0' * (3 * 1024 * 1024))
        location = mount / 'ts'
        location.mkdir()
        owner = pwd.getpwnam(pgserver.PG_OS_USER)
        os.chown(str(location), owner.pw_uid, owner.pw_gid)
        admin(db.server, sql.SQL('CREATE TABLESPACE {} LOCATION {}').format(sql.Identifier(name),
                                                                            sql.Literal(str(location))))
        db.query(sql.SQL('ALTER DATABASE {} SET default_tablespace = {}').format(
            sql.Identifier(db.name), sql.Identifier(name)))
        yield name, mount, location
    finally:
        admin(db.server, sql.SQL('DROP TABLESPACE IF EXISTS {}').format(sql.Identifier(name)))
        subprocess.run(['umount', str(mount)], check=True)
        mount.rmdir()


def test_a_tablespace_on_a_small_filesystem_stops_the_deploy(db, tiny_tablespace):
    name, mount, location = tiny_tablespace
    before = catalog_snapshot(db)
    rc, out = playbook(db, 'playbooks/deploy_indexes.yml', '-i', 'inventories/local')
    assert rc != 0, out
    flat = ' '.join(out.split())
    assert 'preflight failed on local-db (disk)' in flat and 'nothing was changed' in flat
    stat = os.statvfs(str(location))
    available = stat.f_bavail * stat.f_frsize
    assert 'not enough free space on %s (tmpfs on %s, local-db): ' % (location, mount) in flat
    assert '%s of 4.0 MiB available' % human_bytes(available) in flat
    assert 'below the minimum of 10% (min_free_percent)' in flat
    failed, result, checks = preflight(db.params, [OVERVIEW, PAYMENTS])
    assert not failed and {e['tablespace'] for e in result['space']['indexes']} == {name}
    assert [loc['path'] for loc in result['space']['locations']][0] == str(location)
    assert available <= 1024 * 1024
    assert six_state(db) == {n: None for n in SIX} and catalog_snapshot(db) == before
    assert [p for p in location.rglob('*') if not p.is_dir()] == []

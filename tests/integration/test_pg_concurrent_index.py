"""pg_concurrent_index end to end (the module as Ansible runs it) against a real server."""
import psycopg2
import pytest

from helpers.modules import run_module
from helpers.sessions import BackgroundStatement, OldSnapshot, make_invalid_index, wait_for_build_waiting

OVERVIEW = dict(name='idx_fr_overview_org_period', table='franchise_overview', columns=['org_id', 'period'])
OVERVIEW_DEF = ('CREATE INDEX idx_fr_overview_org_period ON public.franchise_overview'
                ' USING btree (org_id, period)')
CREATE_SQL = ('CREATE INDEX CONCURRENTLY "idx_fr_overview_org_period" ON "public"."franchise_overview"'
              ' USING btree ("org_id", "period")')
DROP_SQL = 'DROP INDEX CONCURRENTLY IF EXISTS "public"."idx_fr_overview_org_period"'


def index_module(db, check_mode=False, diff=False, **args):
    return run_module('pg_concurrent_index', dict(db.params, **args), check_mode=check_mode, diff=diff)


def test_creates_missing_index_concurrently(db):
    failed, result = index_module(db, **OVERVIEW)
    assert not failed, result
    assert result['changed'] is True and result['action'] == 'created'
    assert result['queries'] == [CREATE_SQL]
    assert result['valid'] is True and result['definition'] == OVERVIEW_DEF
    assert result['size_bytes'] > 0 and result['duration_s'] > 0
    assert db.index('idx_fr_overview_org_period') == (True, OVERVIEW_DEF, 'franchise_overview')


def test_second_run_changes_nothing(db):
    index_module(db, **OVERVIEW)
    failed, result = index_module(db, **OVERVIEW)
    assert not failed
    assert result['changed'] is False and result['action'] == 'none' and result['queries'] == []
    assert result['valid'] is True and result['definition'] == OVERVIEW_DEF


def test_invalid_index_is_rebuilt_where_if_not_exists_would_keep_it(db):
    make_invalid_index(db, CREATE_SQL)
    assert db.index('idx_fr_overview_org_period')[0] is False
    # The runbook's retry: IF NOT EXISTS sees the name and silently keeps the INVALID index.
    db.query(CREATE_SQL.replace('CONCURRENTLY', 'CONCURRENTLY IF NOT EXISTS'))
    assert db.index('idx_fr_overview_org_period')[0] is False

    failed, result = index_module(db, **OVERVIEW)
    assert not failed, result
    assert result['action'] == 'rebuilt' and result['changed'] is True
    assert result['queries'] == [DROP_SQL, CREATE_SQL]
    assert any('INVALID' in str(w) for w in result['warnings']), result.get('warnings')
    assert db.index('idx_fr_overview_org_period') == (True, OVERVIEW_DEF, 'franchise_overview')


def test_index_being_built_by_another_session_is_not_dropped(db):
    snapshot = OldSnapshot(db)
    build = BackgroundStatement(db, CREATE_SQL)
    try:
        wait_for_build_waiting(db, build.pid)
        failed, result = index_module(db, **OVERVIEW)
        assert failed
        assert 'being built right now by another session' in result['msg']
        assert 'pid %d' % build.pid in result['msg']
        assert result['builders'][0]['pid'] == build.pid
    finally:
        snapshot.end()
        build.join()
    assert build.error is None
    assert db.index('idx_fr_overview_org_period')[0] is True


def test_drops_index_concurrently_then_nothing(db):
    index_module(db, **OVERVIEW)
    failed, result = index_module(db, state='absent', **OVERVIEW)
    assert not failed
    assert result['action'] == 'dropped' and result['queries'] == [DROP_SQL]
    assert db.index('idx_fr_overview_org_period') is None
    failed, result = index_module(db, state='absent', **OVERVIEW)
    assert not failed and result['changed'] is False and result['action'] == 'none'


def test_absent_refuses_an_index_of_that_name_on_another_table(db):
    db.query('CREATE INDEX idx_fr_overview_org_period ON payments (org_id)')
    failed, result = index_module(db, state='absent', **OVERVIEW)
    assert failed and 'exists on table public.payments, not on public.franchise_overview' in result['msg']
    assert db.index('idx_fr_overview_org_period') is not None


def test_check_mode_runs_no_ddl_and_returns_the_sql(db):
    failed, result = index_module(db, check_mode=True, diff=True, **OVERVIEW)
    assert not failed
    assert result['changed'] is True and result['action'] == 'created'
    assert result['queries'] == [CREATE_SQL]
    assert result['diff']['before'] == '' and result['diff']['after'] == OVERVIEW_DEF + '\n'
    assert db.index('idx_fr_overview_org_period') is None

    make_invalid_index(db, CREATE_SQL)
    failed, result = index_module(db, check_mode=True, **OVERVIEW)
    assert result['action'] == 'rebuilt' and result['queries'] == [DROP_SQL, CREATE_SQL]
    assert db.index('idx_fr_overview_org_period')[0] is False

    db.query('DROP INDEX idx_fr_overview_org_period')
    index_module(db, **OVERVIEW)
    failed, result = index_module(db, check_mode=True, diff=True, state='absent', **OVERVIEW)
    assert result['action'] == 'dropped' and result['queries'] == [DROP_SQL]
    assert result['diff']['before'] == OVERVIEW_DEF + '\n' and result['diff']['after'] == ''
    assert db.index('idx_fr_overview_org_period')[0] is True


def test_same_name_with_another_definition_is_drift(db):
    db.query('CREATE INDEX idx_fr_overview_org_period ON franchise_overview (org_id, period DESC)')
    failed, result = index_module(db, **OVERVIEW)
    assert failed
    assert 'exists with another definition' in result['msg']
    assert result['existing_definition'].endswith('(org_id, period DESC)')
    assert result['desired_definition'] == OVERVIEW_DEF
    assert db.index('idx_fr_overview_org_period')[1].endswith('(org_id, period DESC)')


def test_same_name_on_another_table_is_drift(db):
    db.query('CREATE INDEX idx_fr_overview_org_period ON franchise_budgets (org_id, period)')
    failed, result = index_module(db, **OVERVIEW)
    assert failed and 'exists on table public.franchise_budgets' in result['msg']
    assert db.index('idx_fr_overview_org_period')[2] == 'franchise_budgets'


def test_missing_table(db):
    failed, result = index_module(db, name='idx_x', table='no_such_table', columns=['a'])
    assert failed and result['msg'] == 'table public.no_such_table does not exist (index public.idx_x cannot be built on it)'


def test_view_is_refused(db):
    db.query('CREATE VIEW v_payments AS SELECT * FROM payments')
    failed, result = index_module(db, name='idx_x', table='v_payments', columns=['org_id'])
    assert failed and 'public.v_payments is a view, not a table' in result['msg']


def test_missing_column(db):
    failed, result = index_module(db, name='idx_x', table='payments', columns=['org_id', 'nope'])
    assert failed and 'column "nope" does not exist' in result['msg']
    assert db.indexes_on('payments') == ['payments_pkey']


def test_hostile_names_are_quoted_and_kept_exactly(db):
    db.query('CREATE TABLE "Mixed Case;Table" ("Org""Id" int, "select" text)')
    db.query('INSERT INTO "Mixed Case;Table" SELECT i, i::text FROM generate_series(1, 100) i')
    before = db.query('SELECT count(*) FROM payments')[0][0]
    name = 'Idx"); DROP TABLE payments; --'
    args = dict(name=name, table='Mixed Case;Table', columns=['Org"Id', 'select'])
    failed, result = index_module(db, **args)
    assert not failed, result
    assert db.index(name)[0] is True and db.index(name)[2] == 'Mixed Case;Table'
    assert db.query('SELECT count(*) FROM payments')[0][0] == before
    failed, result = index_module(db, **args)
    assert not failed and result['action'] == 'none'


def test_name_longer_than_63_bytes_is_rejected_before_anything_runs(db):
    failed, result = index_module(db, name='idx_' + 'x' * 60, table='payments', columns=['org_id'])
    assert failed and 'at most 63 bytes' in result['msg']
    assert db.indexes_on('payments') == ['payments_pkey']


def test_failed_unique_build_leaves_no_invalid_index(db):
    failed, result = index_module(db, name='idx_payments_status_u', table='payments', columns=['status'], unique=True)
    assert failed
    assert 'could not create unique index' in result['msg'] and 'Key (status)' in result['msg']
    assert 'The table has 5 group(s) of rows with duplicate keys' in result['msg']
    assert result['sqlstate'] == '23505'
    assert result['cleaned_up'] == ['public.idx_payments_status_u']
    assert db.index('idx_payments_status_u') is None


def test_snapshot_wait_timeout_fails_cleanly_without_retrying(db):
    with OldSnapshot(db) as snapshot:
        snapshot_pid = snapshot.conn.get_backend_pid()
        failed, result = index_module(db, snapshot_wait_timeout='500ms', retries=3, retry_delay=0.1, **OVERVIEW)
    assert failed
    assert result['wait'] == 'snapshot_wait_timeout' and result['attempts'] == 1
    assert 'waiting for older transactions to finish' in result['msg']
    assert [b['pid'] for b in result['blockers']] == [snapshot_pid]
    assert 'pid %d' % snapshot_pid in result['msg']
    assert result['cleaned_up'] == ['public.idx_fr_overview_org_period']
    assert 'left behind was dropped' in result['msg']
    assert db.index('idx_fr_overview_org_period') is None


def test_statement_timeout_defaults_to_none_for_the_build(db):
    db.query("INSERT INTO franchise_overview SELECT i, 'ORG_' || i % 4000, '2025-01', 1, 1, 1, 1, now()"
             " FROM generate_series(100000, 400000) i")
    # A database default that kills any statement longer than 20 ms (building this index takes longer).
    db.query('ALTER DATABASE %s SET statement_timeout = 20' % db.name)
    with pytest.raises(psycopg2.errors.QueryCanceled):
        db.query(CREATE_SQL, options='-c statement_timeout=20')
    db.query(DROP_SQL)
    failed, result = index_module(db, **OVERVIEW)
    assert not failed, result
    assert db.index('idx_fr_overview_org_period')[0] is True


def test_invalid_setting_is_a_clear_error(db):
    failed, result = index_module(db, lock_timeout='soon', **OVERVIEW)
    assert failed and result['msg'].startswith("invalid value 'soon' for lock_timeout")
    assert db.index('idx_fr_overview_org_period') is None


def test_connection_refused_is_reported_without_traceback(db):
    from pgserver import free_port
    port = free_port()
    failed, result = run_module('pg_concurrent_index', dict(login_host='127.0.0.1', login_port=port,
                                                            login_password='hunter2', **OVERVIEW))
    assert failed and 'could not connect to PostgreSQL (host=127.0.0.1 port=%d' % port in result['msg']
    assert 'hunter2' not in str(result) and 'exception' not in result


@pytest.mark.parametrize('missing', ['table', 'columns'])
def test_present_needs_table_and_columns(db, missing):
    args = dict(OVERVIEW)
    del args[missing]
    failed, result = index_module(db, **args)
    assert failed and missing in result['msg']


def test_role_transaction_timeout_does_not_cancel_the_build_on_17_and_later(db):
    version = int(db.query('SHOW server_version_num')[0][0])
    if version < 170000:
        pytest.skip('transaction_timeout exists from PostgreSQL 17')
    db.query("INSERT INTO franchise_overview SELECT i, 'ORG_' || i % 4000, '2025-01', 1, 1, 1, 1, now()"
             " FROM generate_series(100000, 400000) i")
    db.query('ALTER DATABASE %s SET transaction_timeout = 30' % db.name)
    with pytest.raises(psycopg2.OperationalError):   # the server ends the session: the build is cancelled
        db.query(CREATE_SQL, options='-c transaction_timeout=30')
    db.query(DROP_SQL)
    failed, result = index_module(db, **OVERVIEW)
    assert not failed, result
    assert db.index('idx_fr_overview_org_period')[0] is True

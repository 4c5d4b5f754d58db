"""module_utils/preflight.py: the checks against a live database, the size estimate against real builds,
and the disk judgement of df output."""
import pytest
from psycopg2 import sql

from ansible_collections.chefcloud.pgindex.plugins.module_utils import connection
from ansible_collections.chefcloud.pgindex.plugins.module_utils.errors import SpecError
from ansible_collections.chefcloud.pgindex.plugins.module_utils.preflight import (
    PreflightFailed, check_disk, estimate_index_bytes, parse_df, run_preflight)

SIX = [
    dict(name='idx_fr_overview_org_period', table='franchise_overview', columns=['org_id', 'period']),
    dict(name='idx_fr_rankings_org_metric_period', table='franchise_rankings', columns=['org_id', 'metric', 'period']),
    dict(name='idx_fr_budgets_org_cc_period', table='franchise_budgets', columns=['org_id', 'cost_center', 'period']),
    dict(name='idx_inv_batches_org_sku', table='inventory_batches', columns=['org_id', 'sku']),
    dict(name='idx_po_org_status_created', table='purchase_orders', columns=['org_id', 'status', 'created_at']),
    dict(name='idx_payments_org_status_created', table='payments', columns=['org_id', 'status', 'created_at']),
]
DB_CHECKS = ['version', 'recovery', 'session', 'session_settings', 'privileges', 'tables'] + \
    ['index public.%s' % i['name'] for i in SIX] + \
    ['old_transactions', 'idle_in_transaction', 'prepared_transactions', 'locks', 'vacuum', 'index_builds', 'space',
     'replication', 'archiving']


def preflight(db, indexes=None, **options):
    """run_preflight against ``db``: (failed, result)."""
    opened = []

    def connect():
        conn = connection.connect(dict(db.params, connect_params={}), 'chefcloud.pgindex/test')
        opened.append(conn)
        return conn
    try:
        return False, run_preflight(connect, SIX if indexes is None else indexes, options)
    except PreflightFailed as exc:
        return True, dict(exc.details, msg=exc.msg)
    finally:
        for conn in opened:
            conn.close()


def by_name(result):
    return dict((c['name'], c) for c in result['checks'])


def catalog_snapshot(db):
    return db.query("SELECT c.relname, c.relkind, coalesce(i.indisvalid, true) FROM pg_class c"
                    " LEFT JOIN pg_index i ON i.indexrelid = c.oid"
                    " WHERE c.relnamespace = 'public'::regnamespace ORDER BY 1")


def test_a_quiet_database_passes_every_check_and_changes_nothing(db):
    before = catalog_snapshot(db)
    failed, result = preflight(db)
    assert not failed, result['msg']
    assert [c['name'] for c in result['checks']] == DB_CHECKS
    assert result['status'] == 'pass' and result['counts'] == {'pass': len(DB_CHECKS), 'warn': 0, 'fail': 0}
    checks = by_name(result)
    assert checks['index public.idx_payments_org_status_created']['data']['state'] == 'absent'
    assert checks['index public.idx_payments_org_status_created']['data']['queries'] == [
        'CREATE INDEX CONCURRENTLY "idx_payments_org_status_created" ON "public"."payments" USING btree '
        '("org_id", "status", "created_at")']
    tables = checks['tables']['data']['tables']
    assert [t['table'] for t in tables] == ['public.%s' % i['table'] for i in SIX]
    assert all(t['kind'] == 'table' and t['size_bytes'] > 0 and t['estimated_rows'] > 0 for t in tables)
    assert result['server']['database'] == db.name
    space = result['space']
    assert [e['index'] for e in space['indexes']] == ['public.%s' % i['name'] for i in SIX]
    assert space['total_bytes'] == sum(e['estimated_bytes'] for e in space['indexes']) > 0
    data_dir = db.query('SHOW data_directory')[0][0]
    assert {loc['path']: loc['required_bytes'] for loc in space['locations']} == {
        data_dir: space['total_bytes'], data_dir + '/pg_wal': space['wal_bytes']}
    assert catalog_snapshot(db) == before


def test_the_estimate_is_close_to_the_real_build_and_a_rerun_has_nothing_to_build(db):
    failed, result = preflight(db, checks=['indexes', 'space'])
    assert not failed, result['msg']
    estimates = dict((e['index'].split('.')[1], e['estimated_bytes']) for e in result['space']['indexes'])
    for index in SIX:
        db.query(sql.SQL('CREATE INDEX {} ON {} ({})').format(
            sql.Identifier(index['name']), sql.Identifier(index['table']),
            sql.SQL(', ').join(map(sql.Identifier, index['columns']))))
    actual = dict(db.query('SELECT relname, pg_relation_size(oid) FROM pg_class WHERE relname = ANY(%s)',
                           ([i['name'] for i in SIX],)))
    for name, size in actual.items():
        assert 0.6 * size <= estimates[name] <= 1.6 * size, (name, estimates[name], size)
    failed, result = preflight(db, checks=['indexes', 'space'])
    assert not failed
    assert {c['data']['state'] for c in result['checks'] if c['name'].startswith('index ')} == {'identical'}
    assert result['space']['indexes'] == [] and result['space']['total_bytes'] == 0
    assert by_name(result)['space']['message'] == 'nothing to build'


def test_estimates_follow_the_access_method_and_fillfactor():
    btree = estimate_index_bytes(20000, 4)
    assert btree == 466944                      # what PostgreSQL 18 builds for an int4 column of 20000 rows
    assert estimate_index_bytes(20000, 4, fillfactor=50) > 1.7 * btree
    assert estimate_index_bytes(20000, 4, method='hash') == 130 * 8192   # 128 buckets + metapage + bitmap
    assert estimate_index_bytes(20000, 4, method='brin', heap_pages=167) <= 4 * 8192


def test_a_table_never_analyzed_gets_a_rough_estimate_and_a_warning(db):
    db.query('CREATE TABLE fresh (id int, note text)')
    db.query("INSERT INTO fresh SELECT i, repeat('x', 20) FROM generate_series(1, 5000) i")
    failed, result = preflight(db, [dict(name='idx_fresh_id', table='fresh', columns=['id'])],
                               checks=['tables', 'indexes', 'space'])
    assert not failed
    space = by_name(result)['space']
    assert space['status'] == 'warn' and 'public.fresh has never been analyzed' in space['message']
    entry = result['space']['indexes'][0]
    assert entry['rows_source'].startswith('table size / row width') and 2500 <= entry['estimated_rows'] <= 10000


def test_role_and_database_defaults_that_hurt_a_long_build_are_warnings(db):
    db.query(sql.SQL("ALTER DATABASE {} SET statement_timeout = '30s'").format(sql.Identifier(db.name)))
    db.query(sql.SQL("ALTER ROLE postgres IN DATABASE {} SET lock_timeout = '2s'").format(sql.Identifier(db.name)))
    failed, result = preflight(db, checks=['server'])
    assert not failed
    settings = by_name(result)['session_settings']
    assert settings['status'] == 'warn'
    assert 'statement_timeout = 30s is set for the database (%s)' % db.name in settings['message']
    assert 'lock_timeout = 2s is set for the role in database' in settings['message']
    assert {(s['level'], s['name']) for s in settings['data']['role_database_settings']} == {
        ('database', 'statement_timeout'), ('role in database', 'lock_timeout')}
    assert settings['data']['session_defaults']['statement_timeout'] == '30000ms'


def test_membership_in_the_owning_role_is_enough(db):
    owner, deployer = 'own_%s' % db.name[-8:], 'dep_%s' % db.name[-8:]
    db.query(sql.SQL('CREATE ROLE {} NOLOGIN; CREATE ROLE {} LOGIN IN ROLE {}').format(
        sql.Identifier(owner), sql.Identifier(deployer), sql.Identifier(owner)))
    try:
        db.query(sql.SQL('ALTER TABLE payments OWNER TO {}').format(sql.Identifier(owner)))
        db.query(sql.SQL('GRANT CREATE ON SCHEMA public TO {}').format(sql.Identifier(deployer)))
        payments = [i for i in SIX if i['table'] == 'payments']
        failed, result = preflight(db, payments, checks=['privileges', 'indexes'], login_user=deployer)
        assert failed is False, result['msg']
        assert by_name(result)['privileges']['data']['tables'] == [
            dict(table='public.payments', owner=owner, owned=True, schema_create=True)]
        db.query('ALTER TABLE payments OWNER TO postgres')
    finally:
        db.query(sql.SQL('DROP OWNED BY {}; DROP ROLE {}; DROP ROLE {}').format(
            sql.Identifier(deployer), sql.Identifier(deployer), sql.Identifier(owner)))


def test_the_deploy_policies_decide_what_drift_and_invalid_mean(db):
    db.query('CREATE INDEX idx_fr_overview_org_period ON franchise_overview (org_id)')
    failed, result = preflight(db, SIX[:1], checks=['indexes', 'space'])
    assert failed and by_name(result)['index public.idx_fr_overview_org_period']['data']['state'] == 'drifted'
    for options in (dict(on_drift='replace'), dict(indexes=[dict(SIX[0], on_drift='replace')])):
        failed, result = preflight(db, options.pop('indexes', SIX[:1]), checks=['indexes', 'space'], **options)
        check = by_name(result)['index public.idx_fr_overview_org_period']
        assert not failed and (check['status'], check['data']['state']) == ('warn', 'drifted')
        assert 'on_drift=replace: the desired index is built concurrently as idx_fr_overview_org_period_pgixnew' \
            in check['message']
        assert [e['index'] for e in result['space']['indexes']] == ['public.idx_fr_overview_org_period']


def test_unknown_tablespace_is_named(db):
    failed, result = preflight(db, [dict(SIX[0], tablespace='nowhere')], checks=['indexes', 'space'])
    assert failed
    check = by_name(result)['index public.idx_fr_overview_org_period']
    assert check['status'] == 'fail'
    assert check['message'].startswith('tablespace nowhere (from index tablespace key) does not exist')
    assert result['space']['indexes'] == []


@pytest.mark.parametrize('indexes,options,message', [
    ([dict(name='idx_a', table='payments')], {}, 'index idx_a: columns must list at least one column'),
    (['idx_a'], {}, 'indexes[0] must be a dict with at least name, table and columns'),
    (SIX + SIX[:1], {}, 'indexes lists index public.idx_fr_overview_org_period twice (entries 1 and 7)'),
    (SIX, dict(min_version='thirteen'), 'min_version must be a PostgreSQL version such as 13 or 14.4'),
    (SIX, dict(max_replication_lag='lots'), 'max_replication_lag must be a size such as 512MB or 1GB'),
    (SIX, dict(min_free_percent=120), 'min_free_percent must be between 0 and 99'),
    (SIX, dict(max_transaction_age='soon'), "invalid value 'soon' for max_transaction_age"),
])
def test_bad_input_is_a_clear_error(db, indexes, options, message):
    with pytest.raises(SpecError) as err:
        preflight(db, indexes, **options)
    assert err.value.msg.startswith(message), err.value.msg


# --- check_disk: df -P -B1 output from the database host against the estimate ----------------------

def df(size, available, mount='/data', filesystem='/dev/sdb1'):
    used = size - available
    return ('Filesystem 1-blocks Used Available Capacity Mounted on\n'
            '%s %d %d %d %d%% %s\n' % (filesystem, size, used, available, 100 * used // size, mount))


def space(*locations, **thresholds):
    return dict(estimated=True, locations=[dict(path=path, what=[what], required_bytes=need, unknown_reason=None)
                                           for path, what, need in locations],
                min_free_percent=thresholds.get('min_free', 10), free_margin_percent=thresholds.get('margin', 20))


def report(path, stdout, rc=0, stderr=''):
    return dict(path=path, rc=rc, stdout=stdout, stderr=stderr)


def test_df_output_is_parsed_including_mount_points_with_spaces():
    assert parse_df(df(1000, 400, mount='/mnt/my disk')) == dict(
        filesystem='/dev/sdb1', size_bytes=1000, used_bytes=600, available_bytes=400, mount='/mnt/my disk')


def test_enough_space_passes_with_the_numbers_in_the_message():
    result = check_disk(space(('/data/pg', 'indexes', 100 * 2 ** 20)), [report('/data/pg', df(10 * 2 ** 30, 5 * 2 ** 30))],
                        'db1')
    assert result['status'] == 'pass'
    assert result['message'].startswith('/data/pg (/dev/sdb1 on /data, db1): 5.0 GiB of 10.0 GiB available; the build '
                                        'needs ~100.0 MiB (indexes), leaving 4.9 GiB (49.0%)')
    fs = result['data']['filesystems'][0]
    assert fs['free_after_bytes'] == 5 * 2 ** 30 - 100 * 2 ** 20 and fs['ok'] is True


def test_less_than_ten_percent_free_after_the_build_fails():
    result = check_disk(space(('/data/pg', 'indexes', 50)), [report('/data/pg', df(1000, 140))])
    assert result['status'] == 'fail'
    assert '9.0% would be free after the build, below the minimum of 10% (min_free_percent)' in result['message']
    assert result['data']['filesystems'][0]['free_after_bytes'] == 90


def test_free_space_under_the_margin_over_the_estimate_fails():
    result = check_disk(space(('/data/pg', 'indexes', 500), min_free=0, margin=20), [report('/data/pg', df(10000, 590))])
    assert result['status'] == 'fail'
    assert ('590 B available is less than the estimate plus a 20% margin, 600 B (free_margin_percent)'
            in result['message'])


def test_locations_on_one_filesystem_add_up():
    locations = space(('/data/pg', 'indexes', 300), ('/data/pg/pg_wal', 'WAL (pg_wal)', 300))
    reports = [report('/data/pg', df(10000, 2000)), report('/data/pg/pg_wal', df(10000, 2000))]
    result = check_disk(locations, reports)
    fs = result['data']['filesystems']
    assert len(fs) == 1 and fs[0]['required_bytes'] == 600 and fs[0]['paths'] == ['/data/pg', '/data/pg/pg_wal']
    assert result['status'] == 'pass'
    assert check_disk(locations, [report('/data/pg', df(10000, 2000)),
                                  report('/data/pg/pg_wal', df(10000, 700, mount='/wal', filesystem='/dev/sdc'))]
                      )['status'] == 'fail'


def test_unknown_path_and_failed_df_fail_with_the_reason():
    unknown = dict(estimated=True, locations=[dict(path=None, what=['WAL (pg_wal)'], required_bytes=10,
                                                   unknown_reason='set pgindex_data_directory')])
    result = check_disk(unknown, [])
    assert result['status'] == 'fail' and 'WAL (pg_wal) cannot be checked: set pgindex_data_directory' in result['message']
    result = check_disk(space(('/srv/ts', 'indexes', 1)),
                        [report('/srv/ts', '', rc=1, stderr="df: /srv/ts: Permission denied")], 'db1')
    assert result['status'] == 'fail'
    assert 'df -P -B1 /srv/ts failed on db1: df: /srv/ts: Permission denied; the user running the play' in result['message']
    assert check_disk(dict(estimated=False), [])['status'] == 'warn'

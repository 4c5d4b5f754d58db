"""Full index definitions, hostile input, and drift of each kind, against a real server."""
import os
import pwd
import shutil

import pytest

import pgserver
from helpers.modules import run_module

FULL = dict(
    name='idx_inv_open_sku', table='inventory_batches',
    columns=['org_id', dict(expression='lower(sku)', opclass='text_pattern_ops'),
             dict(name='received_at', order='desc', nulls='last'), dict(name='sku', collation='C')],
    include=['quantity'], where="expires_at IS NOT NULL AND quantity > 0", storage_params={'fillfactor': 90},
)
FULL_DEF = ('CREATE INDEX idx_inv_open_sku ON public.inventory_batches USING btree (org_id, lower(sku) '
            'text_pattern_ops, received_at DESC NULLS LAST, sku COLLATE "C") INCLUDE (quantity) '
            "WITH (fillfactor='90') WHERE ((expires_at IS NOT NULL) AND (quantity > (0)::numeric))")


def index_module(db, check_mode=False, **args):
    return run_module('pg_concurrent_index', dict(db.params, **args), check_mode=check_mode)


def fingerprint(db):
    """What an injection would change: the row count of payments and every index in the database."""
    return (db.query('SELECT count(*) FROM payments')[0][0],
            db.query("SELECT array_agg(indexrelid::regclass::text ORDER BY 1) FROM pg_index i"
                     " JOIN pg_class c ON c.oid = i.indrelid WHERE c.relnamespace = 'public'::regnamespace")[0][0])


def test_full_definition_is_built_and_then_idempotent(db):
    failed, result = index_module(db, **FULL)
    assert not failed, result
    assert result['definition'] == FULL_DEF and db.index('idx_inv_open_sku') == (True, FULL_DEF, 'inventory_batches')
    failed, result = index_module(db, **FULL)
    assert not failed and result['action'] == 'none'


@pytest.mark.parametrize('method,columns,params,expected', [
    ('hash', ['org_id'], None, 'USING hash (org_id)'),
    ('brin', ['created_at'], {'pages_per_range': 16}, "USING brin (created_at) WITH (pages_per_range='16')"),
    ('gin', [dict(expression="to_tsvector('simple', method)")], None, "USING gin (to_tsvector('simple'::regconfig, method))"),
])
def test_access_methods(db, method, columns, params, expected):
    failed, result = index_module(db, name='idx_m', table='payments', method=method, columns=columns,
                                  storage_params=params)
    assert not failed, result
    assert db.index('idx_m')[0] is True and db.index('idx_m')[1].endswith(expected)


def test_unique_nulls_not_distinct_by_server_version(db):
    db.query('CREATE TABLE codes (code text)')
    args = dict(name='idx_codes_u', table='codes', columns=['code'], unique=True, nulls_not_distinct=True)
    version = db.query('SHOW server_version_num')[0][0]
    failed, result = index_module(db, **args)
    if int(version) >= 150000:
        assert not failed and db.index('idx_codes_u')[1].endswith('(code) NULLS NOT DISTINCT')
    else:
        assert failed and 'nulls_not_distinct needs PostgreSQL 15 or newer' in result['msg']
        assert db.index('idx_codes_u') is None


@pytest.mark.parametrize('field,value,error', [
    ('expression', "x); DROP TABLE payments; --", 'single SQL expression'),
    ('expression', "org_id)); DROP TABLE payments; CREATE INDEX z ON payments ((org_id", ';'),
    ('expression', "(SELECT 1)", 'cannot use subquery in index expression'),
    ('expression', "org_id -- )", 'without comments'),
    ('expression', "'unterminated", 'unterminated'),
    ('where', "status = 'x') OR (1 = 1", 'closes a parenthesis it did not open'),
    ('where', "true; DROP TABLE payments", ';'),
    ('opclass', 'text_ops"; DROP TABLE payments; --', 'does not exist'),
    ('collation', 'C"; DROP TABLE payments; --', 'does not exist'),
    ('include', ['quantity"); DROP TABLE payments; --'], 'does not exist'),
    ('tablespace', 'x"; DROP TABLE payments; --', 'does not exist'),
    ('storage_params', {'fillfactor = 10); DROP TABLE payments; --': 1}, 'invalid storage parameter name'),
    ('storage_params', {'fillfactor': "10'); DROP TABLE payments; --"}, 'invalid value for integer option'),
])
def test_hostile_input_in_any_option_is_a_clear_error_with_nothing_changed(db, field, value, error):
    before = fingerprint(db)
    args = dict(name='idx_hostile', table='payments', columns=['org_id'])
    if field in ('expression', 'opclass', 'collation'):
        args['columns'] = [dict({'name': 'method'} if field != 'expression' else {}, **{field: value})]
    else:
        args[field] = value
    failed, result = index_module(db, **args)
    assert failed and error in result['msg'], result['msg']
    assert 'Traceback' not in result['msg']
    assert fingerprint(db) == before


@pytest.mark.parametrize('existing', [
    'CREATE INDEX idx_x ON franchise_overview (org_id, period DESC)',          # another order
    'CREATE INDEX idx_x ON franchise_overview (org_id, period) WHERE org_id > \'ORG_2\'',  # another predicate
    'CREATE INDEX idx_x ON franchise_overview (org_id)',                         # a missing column
    'CREATE INDEX idx_x ON franchise_overview (org_id, period) INCLUDE (branch_id)',   # an extra INCLUDE column
    'CREATE UNIQUE INDEX idx_x ON franchise_overview (id, org_id, period)',     # unique, other columns
])
def test_every_kind_of_drift_is_caught(db, existing):
    db.query(existing)
    old = db.index('idx_x')[1]
    failed, result = index_module(db, name='idx_x', table='franchise_overview', columns=['org_id', 'period'])
    assert failed and 'exists with another definition' in result['msg']
    assert 'existing: %s' % old in result['msg']
    assert 'desired:  CREATE INDEX idx_x ON public.franchise_overview USING btree (org_id, period)' in result['msg']
    assert db.index('idx_x')[1] == old
    failed, result = index_module(db, name='idx_x', table='franchise_overview', columns=['org_id', 'period'],
                                  on_drift='ignore')
    assert not failed and result['action'] == 'none' and result['changed'] is False
    assert any('on_drift=ignore' in str(w) for w in result['warnings'])
    assert db.index('idx_x')[1] == old


def test_drift_replace_builds_the_new_index_before_dropping_the_old(db):
    db.query('CREATE INDEX idx_x ON franchise_overview (org_id, period DESC)')
    args = dict(name='idx_x', table='franchise_overview', columns=['org_id', 'period'], on_drift='replace')
    failed, result = index_module(db, check_mode=True, **args)
    assert not failed and result['action'] == 'replaced'
    assert db.index('idx_x')[1].endswith('(org_id, period DESC)')
    failed, result = index_module(db, **args)
    assert not failed, result
    assert result['action'] == 'replaced'
    assert result['queries'] == [
        'CREATE INDEX CONCURRENTLY "idx_x_pgixnew" ON "public"."franchise_overview" USING btree ("org_id", "period")',
        'DROP INDEX CONCURRENTLY IF EXISTS "public"."idx_x"',
        'ALTER INDEX "public"."idx_x_pgixnew" RENAME TO "idx_x"']
    assert db.index('idx_x') == (True, 'CREATE INDEX idx_x ON public.franchise_overview USING btree (org_id, period)',
                                 'franchise_overview')
    assert db.index('idx_x_pgixnew') is None
    assert index_module(db, **args)[1]['action'] == 'none'


def test_drift_replace_resumes_from_a_finished_replacement(db):
    db.query('CREATE INDEX idx_x ON franchise_overview (org_id, period DESC)')
    db.query('CREATE INDEX idx_x_pgixnew ON franchise_overview (org_id, period)')  # an earlier run got this far
    failed, result = index_module(db, name='idx_x', table='franchise_overview', columns=['org_id', 'period'],
                                  on_drift='replace')
    assert not failed and [q.split(' ')[0] for q in result['queries']] == ['DROP', 'ALTER']
    assert db.index('idx_x')[1].endswith('(org_id, period)')


def test_on_invalid_fail_leaves_the_invalid_index(db):
    db.query("CREATE INDEX idx_x ON payments (org_id); UPDATE pg_index SET indisvalid = false"
             " WHERE indexrelid = 'idx_x'::regclass")
    failed, result = index_module(db, name='idx_x', table='payments', columns=['org_id'], on_invalid='fail')
    assert failed and 'is INVALID' in result['msg'] and 'on_invalid=fail' in result['msg']
    assert db.index('idx_x')[0] is False


@pytest.fixture
def tablespaces(pg_server):
    """Two tablespaces in directories owned by the server's OS user."""
    made = []
    owner = pwd.getpwnam('pgindex') if os.geteuid() == 0 else pwd.getpwuid(os.getuid())
    for name in ('ts_fast', 'ts_slow'):
        path = pgserver.cache_dir() / ('%s-%d' % (name, pg_server.port))
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        os.chown(path, owner.pw_uid, owner.pw_gid)
        pg_server.psql("CREATE TABLESPACE %s LOCATION '%s'" % (name, path))
        made.append((name, path))
    yield [made_name for made_name, made_path in made]
    for name, path in made:
        pg_server.psql('DROP TABLESPACE IF EXISTS %s' % name)
        shutil.rmtree(path, ignore_errors=True)


def test_tablespace_is_used_and_compared(db, tablespaces):
    args = dict(name='idx_ts', table='payments', columns=['org_id'], tablespace='ts_fast')
    failed, result = index_module(db, **args)
    assert not failed, result
    assert db.query("SELECT t.spcname FROM pg_class c JOIN pg_tablespace t ON t.oid = c.reltablespace"
                    " WHERE c.relname = 'idx_ts'")[0][0] == 'ts_fast'
    assert index_module(db, **args)[1]['action'] == 'none'
    slow = dict(args)
    slow['tablespace'] = 'ts_slow'
    failed, result = index_module(db, **slow)
    assert failed and 'tablespace' in result['msg'] and '(tablespace ts_fast)' in result['msg']
    failed, result = index_module(db, on_drift='replace', **slow)
    assert not failed and result['action'] == 'replaced'
    assert db.query("SELECT t.spcname FROM pg_class c JOIN pg_tablespace t ON t.oid = c.reltablespace"
                    " WHERE c.relname = 'idx_ts'")[0][0] == 'ts_slow'
    db.query('DROP INDEX idx_ts')

"""module_utils/index_spec.py: name checks, statements, and server-side normalization."""
import pytest

from ansible_collections.chefcloud.pgindex.plugins.module_utils import connection
from ansible_collections.chefcloud.pgindex.plugins.module_utils.errors import SpecError
from ansible_collections.chefcloud.pgindex.plugins.module_utils.index_spec import IndexSpec, normalized_definition


@pytest.fixture
def conn(db):
    c = connection.connect(dict(db.params, connect_params={}), 'chefcloud.pgindex/test')
    yield c
    c.close()


def test_names_longer_than_63_bytes_are_rejected():
    with pytest.raises(SpecError) as err:
        IndexSpec(name='i' * 64, table='payments', columns=['org_id'])
    assert '64 bytes' in err.value.msg and 'truncated' in err.value.msg
    # 63 bytes is fine, and bytes count, not characters: 21 three-byte characters = 63 bytes
    IndexSpec(name='i' * 63, table='payments', columns=['org_id'])
    IndexSpec(name='\u20ac' * 21, table='payments', columns=['org_id'])
    with pytest.raises(SpecError):
        IndexSpec(name='\u20ac' * 22, table='payments', columns=['org_id'])


@pytest.mark.parametrize('kind,kwargs', [
    ('column', dict(columns=['c' * 64])),
    ('table', dict(table='t' * 64)),
    ('schema', dict(schema='s' * 64)),
    ('index name', dict(name='')),
    ('index name', dict(name='a\x00b')),
])
def test_every_identifier_is_checked(kind, kwargs):
    args = dict(name='idx', table='payments', columns=['org_id'])
    args.update(kwargs)
    with pytest.raises(SpecError) as err:
        IndexSpec(**args)
    assert err.value.msg.startswith(kind)


def test_duplicate_column_is_rejected():
    with pytest.raises(SpecError) as err:
        IndexSpec(name='idx', table='payments', columns=['org_id', 'org_id'])
    assert 'twice' in err.value.msg


def test_statements_quote_every_identifier(conn):
    spec = IndexSpec(name='Idx"; DROP TABLE payments; --', table='Pay ments', schema='App', columns=['Org Id'],
                     unique=True)
    assert spec.create_statement().as_string(conn) == (
        'CREATE UNIQUE INDEX CONCURRENTLY "Idx""; DROP TABLE payments; --" ON "App"."Pay ments" USING btree ("Org Id")')
    assert spec.drop_statement().as_string(conn) == (
        'DROP INDEX CONCURRENTLY IF EXISTS "App"."Idx""; DROP TABLE payments; --"')


@pytest.mark.parametrize('unique', [False, True])
def test_normalized_definition_is_what_the_server_prints(db, conn, unique):
    spec = IndexSpec(name='idx_probe', table='payments', columns=['id', 'status'], unique=unique)
    expected = normalized_definition(conn, spec)
    db.query(spec.create_statement(concurrently=False).as_string(conn))
    assert db.index('idx_probe')[1] == expected


def test_normalized_definition_with_hostile_names(db, conn):
    db.query('CREATE SCHEMA "Sch ema"; CREATE TABLE "Sch ema"."Mixed;Case" ("Org Id" int, "x""y" text)')
    spec = IndexSpec(name='ON pg_temp."Mixed;Case" x', table='Mixed;Case', schema='Sch ema',
                     columns=['x"y', 'Org Id'])
    expected = normalized_definition(conn, spec)
    db.query(spec.create_statement(concurrently=False).as_string(conn))
    assert db.index('ON pg_temp."Mixed;Case" x', schema='Sch ema')[1] == expected


def test_normalization_touches_nothing_and_reports_unknown_columns(db, conn):
    spec = IndexSpec(name='idx_bad', table='payments', columns=['org_id', 'no_such_column'])
    with pytest.raises(SpecError) as err:
        normalized_definition(conn, spec)
    assert 'column "no_such_column" does not exist' in err.value.msg
    assert db.index('idx_bad') is None
    # the probe's transaction was rolled back: no temporary table is left and the session is usable
    with conn.cursor() as cur:
        cur.execute('SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema()')
        assert cur.fetchone()[0] == 0
        cur.execute('SELECT 1')
    assert conn.get_transaction_status() == 0  # TRANSACTION_STATUS_IDLE

"""Issue 11 case 7: user SQL is proved one expression by PostgreSQL's own grammar (pglast), before anything runs.

The old hand lexer read ``a$e'\\' ...`` as an E'' string; PostgreSQL reads ``a$e`` as a name (here a domain,
so ``a$e '\\'`` is a valid typed literal) and the rest as a second statement, which then ran during the
definition probes. Each hostile fragment below is refused with a clear message, through the module, the
change-set module and the role, and a sequence that an injected statement would advance is unchanged.
"""
import pytest

from helpers.modules import run_module
from helpers.playbooks import playbook

BYPASS = r"""status = a$e'\' ); SELECT nextval($q$seq$q$); --'"""

HOSTILE = [
    ('where', BYPASS, 'closes a parenthesis it did not open'),
    ('where', r"""status = a$e'\' ) OR nextval($q$seq$q$) > 0 OR (true""", 'closes a parenthesis it did not open'),
    ('where', r"""E'\\' ); SELECT nextval('seq'); --'""", 'closes a parenthesis it did not open'),
    ('where', "status = 'x'; SELECT nextval('seq')", '";" is not allowed'),
    ('where', "status = 'x' /* ); SELECT nextval('seq'); -- */", 'without comments'),
    ('where', "(SELECT nextval('seq')) > 0", 'must not hold a subquery'),
    ('expression', "lower(status)), (nextval('seq')", 'closes a parenthesis it did not open'),
    ('expression', "status) WHERE (nextval('seq') > 0", 'closes a parenthesis it did not open'),
    ('expression', "lower(status) -- ", 'without comments'),
    ('expression', "$q$ ); SELECT nextval('seq'); $q", 'is not valid SQL: unterminated dollar-quoted string'),
]


@pytest.fixture
def trap(db):
    """A domain named a$e (which makes the old bypass valid SQL) and the sequence an injection would advance."""
    db.query('CREATE DOMAIN "a$e" AS text')
    db.query('CREATE SEQUENCE seq')
    return db


def sequence_state(db):
    return db.query('SELECT last_value, is_called FROM seq')[0]


def nothing_changed(db):
    assert sequence_state(db) == (1, False)
    assert db.indexes_on('payments') == ['payments_pkey']


def test_the_bypass_is_real_sql_for_postgresql(trap):
    """What the old probe sent: PostgreSQL runs it as two statements, so nextval really runs."""
    conn = trap.connect()
    with conn.cursor() as cur:
        cur.execute('BEGIN')
        cur.execute('CREATE TEMPORARY TABLE probe (LIKE payments) ON COMMIT DROP')
        cur.execute('CREATE INDEX idx_probe ON pg_temp.probe USING btree (org_id) WHERE (%s)' % BYPASS)
        cur.execute('ROLLBACK')
    conn.close()
    assert sequence_state(trap) == (1, True)   # the injected SELECT nextval ran (sequences ignore ROLLBACK)


@pytest.mark.parametrize('field, value, message', HOSTILE)
@pytest.mark.parametrize('check_mode', [False, True])
def test_pg_concurrent_index_refuses_before_anything_runs(trap, field, value, message, check_mode):
    args = dict(name='idx_hostile', table='payments', columns=['org_id'])
    if field == 'expression':
        args['columns'] = [dict(expression=value)]
    else:
        args[field] = value
    failed, result = run_module('pg_concurrent_index', dict(trap.params, **args), check_mode=check_mode)
    assert failed and message in result['msg'], result['msg']
    assert 'of index idx_hostile' in result['msg'] and 'Traceback' not in result['msg']
    assert not result.get('queries')
    nothing_changed(trap)


@pytest.mark.parametrize('field, value, message', HOSTILE)
def test_pg_index_set_refuses_the_whole_change_set_before_anything_runs(trap, field, value, message):
    hostile = dict(name='idx_hostile', table='payments', columns=['org_id'])
    if field == 'expression':
        hostile['columns'] = [dict(expression=value)]
    else:
        hostile[field] = value
    good = dict(name='idx_good', table='payments', columns=['status'])
    failed, result = run_module('pg_index_set', dict(trap.params, indexes=[good, hostile]))
    assert failed and message in result['msg'], result['msg']
    nothing_changed(trap)


def test_a_verification_query_with_a_second_statement_is_refused(trap):
    entry = dict(name='idx_x', table='payments', columns=['org_id'],
                 verify=dict(query=r"""SELECT * FROM payments WHERE status = a$e'\'; SELECT nextval($q$seq$q$); --'"""))
    failed, result = run_module('pg_index_verify', dict(trap.params, indexes=[entry], plan_check='warn'))
    assert failed and 'must be a single statement, got 2' in result['msg'], result['msg']
    assert sequence_state(trap) == (1, False)


@pytest.mark.parametrize('check', [False, True])
def test_the_role_refuses_the_bypass_before_any_connection(trap, tmp_path, check):
    changeset = tmp_path / 'hostile.yml'
    changeset.write_text(
        "pgindex_indexes:\n"
        "  - name: idx_hostile\n"
        "    table: payments\n"
        "    columns: [org_id]\n"
        "    where: %s\n" % ("'" + BYPASS.replace("'", "''") + "'"))
    rc, out = playbook(trap, 'playbooks/deploy_indexes.yml', '-i', 'inventories/local',
                       '-e', 'pgindex_changeset_file=%s' % changeset, *(['--check'] if check else []))
    assert rc != 0, out
    assert 'where of index idx_hostile must be a single SQL expression: it closes a parenthesis it did not open' in out
    assert 'Run the preflight checks' not in out          # refused before any module connected
    nothing_changed(trap)

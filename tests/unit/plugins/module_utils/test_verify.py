"""module_utils/verify.py: each concern on its own, against a real server (the ``db`` fixture)."""
import psycopg2
import pytest

from ansible_collections.chefcloud.pgindex.plugins.module_utils import verify
from ansible_collections.chefcloud.pgindex.plugins.module_utils.changeset import read_entry
from ansible_collections.chefcloud.pgindex.plugins.module_utils.errors import SpecError, VerifyError
from ansible_collections.chefcloud.pgindex.plugins.module_utils.index_spec import IndexSpec

from integration.test_pg_concurrent_index import make_invalid_index

PAYMENTS = dict(name='idx_payments_org_status_created', table='payments', columns=['org_id', 'status', 'created_at'])
PAYMENTS_QUERY = dict(query='SELECT * FROM payments WHERE org_id = %(org)s AND status = %(status)s '
                            'ORDER BY created_at DESC LIMIT 50', params=dict(org='ORG_12345', status='pending'))


def entry(query=None, **index):
    """A change set entry: the payments index (or ``index``) with a verification query."""
    item = dict(PAYMENTS, **index)
    item['verify'] = dict(PAYMENTS_QUERY, **(query or {}))
    return item


def build(db, item):
    db.query('CREATE INDEX %s ON %s (%s)' % (item['name'], item['table'], ', '.join(item['columns'])))


def run(db, items, **options):
    """verify_indexes on ``db``; (failed, result)."""
    options.setdefault('samples', 3)
    try:
        return False, verify.verify_indexes(db.connect, items, options)
    except VerifyError as exc:
        return True, dict(exc.details, msg=exc.msg)


# --- the verification query: one read-only statement, parameters bound by the driver ---------------

@pytest.mark.parametrize('text', [
    'SELECT 1',
    'SELECT 1;',
    "SELECT ';' AS semicolon, $$;$$ AS dollar, \"a;b\".x FROM (SELECT 1 AS x) \"a;b\"",
    '  (SELECT 1) UNION (SELECT 2)',
    'WITH x AS (SELECT 1) SELECT * FROM x',
    'VALUES (1), (2)',
    'TABLE payments',
])
def test_single_query_accepts_one_query(text):
    assert verify.single_query('q', text) == text.strip().rstrip(';')


@pytest.mark.parametrize('text, reason', [
    ('SELECT 1; SELECT 2', 'single'),
    ('SELECT 1; COMMIT; DELETE FROM payments', 'single'),
    ("SELECT 'a'; DROP TABLE payments; --'", 'single'),
    ('SELECT 1 -- a comment', 'comment'),
    ("SELECT 'unterminated", 'unterminated'),
    ('DELETE FROM payments', 'must be a query'),
    ('EXPLAIN SELECT 1', 'must be a query'),
    ('', 'non-empty'),
])
def test_single_query_refuses_anything_else(text, reason):
    with pytest.raises(SpecError) as caught:
        verify.single_query('verification query of index x', text)
    assert reason in caught.value.msg


def test_the_bound_text_is_checked_so_a_value_cannot_add_a_statement(db):
    conn = db.connect()
    query = verify.VerifyQuery('idx_x', "SELECT * FROM payments WHERE status = '%(status)s'",
                               dict(status='; DELETE FROM payments; --'))
    with pytest.raises(SpecError) as caught:
        query.bind(conn)
    assert 'verification query of index idx_x' in caught.value.msg
    ok = verify.VerifyQuery('idx_x', 'SELECT * FROM payments WHERE status = %(status)s', dict(status="x'; DELETE --"))
    assert ok.bind(conn) == "SELECT * FROM payments WHERE status = 'x''; DELETE --'"


def test_a_missing_placeholder_value_is_a_clear_error(db):
    query = verify.VerifyQuery('idx_x', 'SELECT * FROM payments WHERE org_id = %(org)s', {})
    with pytest.raises(SpecError) as caught:
        query.bind(db.connect())
    assert caught.value.msg == ('verification query of index idx_x uses the placeholder %(org)s, '
                                'which verify.params does not set')


def test_verify_keys_are_checked():
    with pytest.raises(SpecError) as caught:
        read_entry(dict(PAYMENTS, name='idx_x', verify=dict(query='SELECT 1', parms={})))
    assert caught.value.msg == "index idx_x: unknown verify key 'parms' (did you mean 'params'?)"


def test_queries_run_read_only_and_are_rolled_back(db):
    before = db.query('SELECT count(*) FROM payments')[0][0]
    build(db, PAYMENTS)
    item = entry(dict(query='WITH gone AS (DELETE FROM payments RETURNING *) SELECT * FROM gone', params={}))
    for options in (dict(plan_check='skip'), dict(explain_analyze=True, plan_check='warn')):
        failed, result = run(db, [item], **options)
        assert failed
        assert 'in a read-only transaction' in result['msg']
        assert db.query('SELECT count(*) FROM payments')[0][0] == before


# --- the index ---------------------------------------------------------------------------------

def test_a_valid_index_passes_with_its_size(db):
    build(db, PAYMENTS)
    facts, problems = verify.check_index(db.connect(), IndexSpec.from_params(PAYMENTS), '5s')
    assert problems == []
    assert facts['exists'] and facts['valid'] and facts['ready'] and facts['live'] and facts['definition_matches']
    assert facts['definition'] == facts['desired_definition'] == (
        'CREATE INDEX idx_payments_org_status_created ON public.payments USING btree (org_id, status, created_at)')
    size = db.query("SELECT pg_relation_size('idx_payments_org_status_created'),"
                    " pg_size_pretty(pg_relation_size('idx_payments_org_status_created'))")[0]
    assert (facts['size_bytes'], facts['size']) == size


def test_an_invalid_index_fails_validity(db):
    make_invalid_index(db, 'CREATE INDEX CONCURRENTLY idx_payments_org_status_created'
                           ' ON payments (org_id, status, created_at)')
    facts, problems = verify.check_index(db.connect(), IndexSpec.from_params(PAYMENTS), '5s')
    assert facts['valid'] is False and facts['definition_matches'] is True
    assert len(problems) == 1 and 'is INVALID (indisvalid = false)' in problems[0]


def test_a_drifted_index_fails_the_definition_check(db):
    db.query('CREATE INDEX idx_payments_org_status_created ON payments (org_id, status DESC, created_at)')
    facts, problems = verify.check_index(db.connect(), IndexSpec.from_params(PAYMENTS), '5s')
    assert facts['valid'] is True and facts['definition_matches'] is False
    assert 'does not have the desired definition' in problems[0]
    assert 'existing: CREATE INDEX idx_payments_org_status_created ON public.payments USING btree ' \
           '(org_id, status DESC, created_at)' in problems[0]


def test_an_index_on_another_table_fails(db):
    db.query('CREATE INDEX idx_payments_org_status_created ON purchase_orders (org_id, status, created_at)')
    facts, problems = verify.check_index(db.connect(), IndexSpec.from_params(PAYMENTS), '5s')
    assert facts['table_matches'] is False
    assert problems == ['index public.idx_payments_org_status_created is on table public.purchase_orders, '
                        'not on public.payments']


def test_a_missing_index_fails(db):
    facts, problems = verify.check_index(db.connect(), IndexSpec.from_params(PAYMENTS), '5s')
    assert facts['exists'] is False
    assert problems == ['index public.idx_payments_org_status_created does not exist (expected on table public.payments)']


def test_absent_passes_when_gone_and_fails_when_still_there(db):
    spec = IndexSpec.from_params(PAYMENTS)
    assert verify.check_absent(db.connect(), spec)[1] == []
    build(db, PAYMENTS)
    facts, problems = verify.check_absent(db.connect(), spec)
    assert facts['exists'] and 'still exists (valid, on table public.payments)' in problems[0]


# --- amcheck -----------------------------------------------------------------------------------

def test_amcheck_off_skipped_when_not_installed_and_never_created_unless_asked(db):
    build(db, PAYMENTS)
    failed, result = run(db, [entry()], samples=0)
    assert not failed and result['indexes'][0]['amcheck'] == dict(status='off', message=None)
    failed, result = run(db, [entry()], samples=0, amcheck='on')
    assert not failed
    assert result['indexes'][0]['amcheck']['status'] == 'skipped'
    assert 'amcheck extension is not installed' in result['warnings'][0]
    assert db.query("SELECT count(*) FROM pg_extension WHERE extname = 'amcheck'")[0][0] == 0


@pytest.mark.parametrize('mode', ['on', 'heapallindexed'])
def test_amcheck_checks_the_index_when_installed(db, mode):
    build(db, PAYMENTS)
    failed, result = run(db, [entry()], samples=0, amcheck=mode, create_amcheck=True)
    assert not failed, result['msg']
    assert result['changed'] is True and result['amcheck']['created'] is True
    check = result['indexes'][0]['amcheck']
    assert check['status'] == 'passed' and check['heapallindexed'] is (mode == 'heapallindexed')
    failed, result = run(db, [entry()], samples=0, amcheck=mode, create_amcheck=True)
    assert result['changed'] is False and result['indexes'][0]['amcheck']['status'] == 'passed'


def test_amcheck_failure_is_reported(db):
    build(db, PAYMENTS)
    db.query('CREATE EXTENSION amcheck')
    db.query('CREATE ROLE verifier_%s' % db.name)
    db.query('GRANT SELECT ON ALL TABLES IN SCHEMA public TO verifier_%s' % db.name)
    try:
        options = dict(samples=0, amcheck='on')
        conn = db.connect()
        conn.cursor().execute('SET ROLE verifier_%s' % db.name)
        with pytest.raises(VerifyError) as caught:
            verify.verify_indexes(lambda: conn, [entry()], options)
        check = caught.value.details['indexes'][0]['amcheck']
        assert check['status'] == 'failed' and 'permission denied for function bt_index_check' in check['message']
        assert 'amcheck found a problem' in caught.value.msg
    finally:
        db.query('DROP OWNED BY verifier_%s' % db.name)
        db.query('DROP ROLE verifier_%s' % db.name)


# --- the plan ----------------------------------------------------------------------------------

def test_plan_walk_finds_the_index_and_shows_the_plan(db):
    build(db, PAYMENTS)
    failed, result = run(db, [entry()], samples=0)
    plan = result['indexes'][0]['plan']
    assert not failed and plan['status'] == 'passed' and plan['used'] is True
    assert plan['index_scans'][0]['index'] == 'idx_payments_org_status_created'
    assert plan['index_scans'][0]['node_type'] in verify.INDEX_SCANS
    assert plan['query'] == ("SELECT * FROM payments WHERE org_id = 'ORG_12345' AND status = 'pending' "
                             "ORDER BY created_at DESC LIMIT 50")
    assert any('idx_payments_org_status_created' in line for line in plan['plan_text'])


def test_a_query_on_a_non_leading_column_fails_the_plan_check_with_the_plan(db):
    build(db, PAYMENTS)
    item = entry(dict(query='SELECT * FROM payments WHERE status = %(status)s', params=dict(status='failed')))
    failed, result = run(db, [item])
    assert failed
    plan = result['indexes'][0]['plan']
    assert plan['status'] == 'failed' and plan['used'] is False and plan['index_scans'] == []
    assert plan['scan'] == 'Seq Scan on payments'
    assert 'the planner does not use index public.idx_payments_org_status_created' in result['msg']
    assert 'Seq Scan on public.payments' in result['msg'] and "Filter: (payments.status = 'failed'::text)" in result['msg']
    assert result['indexes'][0]['latency'] == dict(status='skipped', reason='the planner does not use the index')
    failed, result = run(db, [item], plan_check='warn')
    assert not failed and result['indexes'][0]['plan']['status'] == 'warning'
    assert 'does not use index' in result['warnings'][0]


def test_an_index_of_the_same_name_in_another_schema_does_not_count(db):
    build(db, PAYMENTS)
    db.query('CREATE SCHEMA other')
    db.query('CREATE TABLE other.payments (LIKE public.payments)')
    db.query('INSERT INTO other.payments SELECT * FROM public.payments')
    db.query('CREATE INDEX idx_payments_org_status_created ON other.payments (org_id, status, created_at)')
    db.query('ANALYZE other.payments')
    item = entry(dict(query=PAYMENTS_QUERY['query'].replace('FROM payments', 'FROM other.payments')))
    failed, result = run(db, [item], samples=0)
    assert failed and result['indexes'][0]['plan']['used'] is False


def test_a_partitioned_index_is_used_through_the_indexes_of_its_partitions(db):
    db.query("CREATE TABLE events (org_id text, at date) PARTITION BY RANGE (at)")
    db.query("CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')")
    db.query("CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')")
    db.query("INSERT INTO events SELECT 'ORG_' || (i % 500), date '2024-01-01' + (i % 700)"
             " FROM generate_series(1, 20000) i")
    db.query('ANALYZE events')
    db.query('CREATE INDEX idx_events_org ON events (org_id)')  # attached to an index on each partition
    item = dict(name='idx_events_org', table='events', columns=['org_id'],
                verify=dict(query='SELECT * FROM events WHERE org_id = %(org)s', params=dict(org='ORG_7')))
    failed, result = run(db, [item], amcheck='on', create_amcheck=True)
    assert not failed, result['msg']
    entry = result['indexes'][0]
    assert entry['partitioned'] is True and entry['plan']['status'] == 'passed'
    assert sorted(scan['index'] for scan in entry['plan']['index_scans']) == ['events_2024_org_id_idx',
                                                                              'events_2025_org_id_idx']
    assert entry['amcheck']['status'] == 'skipped'


def test_explain_analyze_executes_and_reports_times(db):
    build(db, PAYMENTS)
    failed, result = run(db, [entry()], samples=0, explain_analyze=True)
    plan = result['indexes'][0]['plan']
    assert not failed and plan['explain_analyze'] is True and plan['execution_time_ms'] is not None
    assert 'actual time=' in plan['plan_text'][0]


def test_analyze_is_offered_and_skipped_in_check_mode(db):
    build(db, PAYMENTS)
    result = verify.verify_indexes(db.connect, [entry()], dict(samples=0, analyze=True), check_mode=True)
    assert result['changed'] is True and result['analyzed'] == []
    result = verify.verify_indexes(db.connect, [entry()], dict(samples=0, analyze=True))
    assert result['changed'] is True and result['analyzed'] == ['public.payments']


# --- latency -----------------------------------------------------------------------------------

def test_percentile_is_percentile_cont(db):
    values = [5.0, 1.0, 3.5, 9.25, 2.0, 7.0, 11.5, 0.5]
    for pct in (50, 95, 99):
        server = db.query('SELECT percentile_cont(%s) WITHIN GROUP (ORDER BY x) FROM unnest(%s::float8[]) x',
                          (pct / 100.0, values))[0][0]
        assert verify.percentile(values, pct) == pytest.approx(server)


def test_reduction_is_computed_from_the_samples():
    before = dict(status='measured', samples_ms=[10.0, 12.0, 11.0, 30.0], timed_out_at_ms=None)
    after = dict(status='measured', samples_ms=[1.0, 2.0, 1.5, 1.2, 9.0], timed_out_at_ms=None)
    result = verify.compare_latency(before, after, 50, 'warn')
    p95_before, p95_after = verify.percentile(before['samples_ms'], 95), verify.percentile(after['samples_ms'], 95)
    assert result['p95_before_ms'] == round(p95_before, 3) and result['p95_after_ms'] == round(p95_after, 3)
    assert result['reduction_pct'] == round((p95_before - p95_after) / p95_before * 100, 1)
    assert result['status'] == 'passed' and result['meets_target'] is True
    strict = verify.compare_latency(before, after, 90, 'fail')
    assert strict['reduction_pct'] == result['reduction_pct'] and strict['status'] == 'failed'


def test_a_timeout_makes_the_figures_lower_bounds():
    before = dict(status='measured', samples_ms=[900.0], timed_out_at_ms=1000.0)
    after = dict(status='measured', samples_ms=[1.0, 1.0], timed_out_at_ms=None)
    result = verify.compare_latency(before, after, 50, 'warn')
    assert result['at_least'] is True and result['p95_before_ms'] == 995.0
    assert verify.summarize([900.0], 1000.0)['lower_bound'] is True


def test_sampling_is_bounded_by_statement_timeout_and_the_budget(db):
    conn = db.connect()
    slow = verify.sample_latency(conn, 'SELECT pg_sleep(0.5)', samples=10, warmup=0, timeout_ms=100, budget_s=30)
    assert slow['stopped'] == 'timeout' and slow['timed_out_at_ms'] == 100.0 and slow['samples_ms'] == []
    assert slow['lower_bound'] is True and slow['p95_ms'] == 100.0 and slow['executions'] == 1
    budget = verify.sample_latency(conn, 'SELECT pg_sleep(0.05)', samples=50, warmup=0, timeout_ms=5000, budget_s=0.3)
    assert budget['stopped'] in ('budget', 'timeout') and len(budget['samples_ms']) < 50
    assert budget['cost_s'] < 1.5


def test_baseline_times_only_the_indexes_not_in_place(db):
    other = dict(name='idx_po_org_status_created', table='purchase_orders', columns=['org_id', 'status', 'created_at'],
                 verify=dict(query='SELECT * FROM purchase_orders WHERE org_id = %(org)s', params=dict(org='ORG_1')))
    build(db, other)
    result = verify.verify_indexes(db.connect, [entry(), other], dict(phase='baseline', samples=2))
    payments, orders = result['indexes']
    assert payments['latency']['status'] == 'measured' and len(payments['latency']['samples_ms']) == 2
    assert payments['plan']['status'] == 'recorded' and payments['plan']['scan'].startswith('Seq Scan')
    assert orders['latency'] == dict(status='skipped', reason='already in place before this run')
    assert result['ok'] is True and result['problems'] == []
    assert result['sampling']['queries'] == 1 and result['sampling']['executions'] == 3


def test_sampling_off(db):
    build(db, PAYMENTS)
    failed, result = run(db, [entry()], samples=0)
    assert result['indexes'][0]['latency'] == dict(status='skipped', reason='latency sampling off (samples: 0)')
    assert result['sampling']['executions'] == 0


# --- usage -------------------------------------------------------------------------------------

def test_usage_and_the_review_of_unused_duplicate_and_redundant_indexes(db):
    build(db, PAYMENTS)
    db.query('CREATE INDEX idx_payments_copy ON payments (org_id, status, created_at)')
    db.query('CREATE INDEX idx_payments_org ON payments (org_id)')
    db.query('CREATE UNIQUE INDEX idx_payments_id_u ON payments (org_id, id)')
    # the planner may pick the copy: the plan check is not what this test is about
    failed, result = run(db, [entry()], samples=0, list_unused=True, plan_check='skip')
    assert not failed
    assert result['indexes'][0]['usage']['idx_scan'] == 0
    review = result['review']
    unused = [u['index'] for u in review['unused']]
    assert 'public.idx_payments_org' in unused and 'public.idx_payments_copy' in unused
    assert 'public.payments_pkey' not in unused and 'public.idx_payments_id_u' not in unused
    assert review['duplicates'] == [dict(table='public.payments', definition=review['duplicates'][0]['definition'],
                                         indexes=['public.idx_payments_copy', 'public.idx_payments_org_status_created'])]
    assert dict(index='public.idx_payments_org', covered_by='public.idx_payments_copy',
                size_bytes=review['redundant'][0]['size_bytes'], size=review['redundant'][0]['size']) in review['redundant']


# --- bad input ---------------------------------------------------------------------------------

@pytest.mark.parametrize('items, options, message', [
    ([], {}, 'indexes must be a non-empty list'),
    ([dict(table='payments')], {}, 'indexes[0] must be a dict with at least name, table and columns'),
    ([dict(PAYMENTS), dict(PAYMENTS)], {}, 'indexes lists index public.idx_payments_org_status_created twice'),
    ([dict(PAYMENTS, columns=None)], {}, 'columns must list at least one column'),
    ([dict(PAYMENTS)], dict(query_timeout='soon'), "invalid value 'soon' for query_timeout"),
    ([dict(PAYMENTS)], dict(samples=-1), 'samples must be an integer >= 0'),
    ([dict(PAYMENTS)], dict(baseline=['x']), 'baseline must be the indexes returned by pg_index_verify'),
])
def test_bad_input_is_a_clear_error(db, items, options, message):
    with pytest.raises(SpecError) as caught:
        verify.verify_indexes(db.connect, items, options)
    assert message in caught.value.msg


def test_a_missing_table_is_a_problem_not_a_crash(db):
    failed, result = run(db, [dict(PAYMENTS, table='no_such_table')])
    assert failed and 'table public.no_such_table does not exist' in result['msg']


def test_psycopg2_errors_in_the_query_are_problems(db):
    build(db, PAYMENTS)
    failed, result = run(db, [entry(dict(query='SELECT * FROM payments WHERE nope = 1', params={}))])
    assert failed and 'the verification query of index public.idx_payments_org_status_created failed: ' \
                      'column "nope" does not exist' in result['msg']
    with pytest.raises(psycopg2.Error):
        db.query('SELECT * FROM payments WHERE nope = 1')

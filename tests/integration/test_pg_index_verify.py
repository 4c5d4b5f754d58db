"""pg_index_verify as Ansible runs it, and the role's baseline -> build -> verify -> report, on real servers."""
import json

import psycopg2
import pytest
import yaml

import demo_data
import pgserver
from helpers.modules import run_module
from helpers.playbooks import ROOT, SIX, playbook, recap
from helpers.servers import temporary_server
from helpers.sessions import make_invalid_index

CHANGESET = yaml.safe_load((ROOT / 'changesets' / '001_franchise_indexes.yml').read_text())['pgindex_indexes']
BIG_ROWS = 200000


def verify_module(params, check_mode=False, **args):
    return run_module('pg_index_verify', dict(params, **args), check_mode=check_mode)


def build_six(params):
    for item in CHANGESET:
        failed, result = run_module('pg_concurrent_index', dict(params, name=item['name'], table=item['table'],
                                                                columns=item['columns']))
        assert not failed, result


def p95(samples):
    """The 95th percentile of the samples, computed here (percentile_cont) and not by the module."""
    ordered = sorted(samples)
    position = (len(ordered) - 1) * 0.95
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def approx_ms(value):
    """The module reports milliseconds rounded to 3 decimals."""
    return pytest.approx(value, abs=0.001)


# --- the module --------------------------------------------------------------------------------

def test_the_change_set_queries_use_the_six_indexes(db):
    build_six(db.params)
    failed, result = verify_module(db.params, indexes=CHANGESET, samples=3, amcheck='on', create_amcheck=True)
    assert not failed, result['msg']
    assert result['ok'] is True and result['changed'] is True  # the amcheck extension was created
    assert [row['name'] for row in result['summary']] == SIX
    for row, entry in zip(result['summary'], result['indexes']):
        assert row['valid'] is True and row['definition_matches'] is True and row['amcheck'] == 'passed'
        assert row['plan'] == 'passed' and row['name'] in row['scan'], entry['plan']['plan_text']
        assert row['size_bytes'] == db.query('SELECT pg_relation_size(%s::regclass)', (row['name'],))[0][0]
        assert row['samples_after'] == 3 and row['p95_after_ms'] == approx_ms(p95(entry['latency']['samples_ms']))
    failed, again = verify_module(db.params, indexes=CHANGESET, samples=0, amcheck='on', create_amcheck=True)
    assert not failed and again['changed'] is False


def test_an_invalid_index_fails_the_module_with_every_result(db):
    build_six(db.params)
    db.query('DROP INDEX idx_fr_budgets_org_cc_period')
    make_invalid_index(db, 'CREATE INDEX CONCURRENTLY idx_fr_budgets_org_cc_period'
                           ' ON franchise_budgets (org_id, cost_center, period)')
    failed, result = verify_module(db.params, indexes=CHANGESET, samples=0)
    assert failed and result['ok'] is False
    assert result['msg'].startswith('1 problem(s) found verifying 6 index(es)')
    assert 'index public.idx_fr_budgets_org_cc_period is INVALID' in result['msg']
    budgets = [row for row in result['summary'] if row['name'] == 'idx_fr_budgets_org_cc_period'][0]
    assert budgets['valid'] is False and budgets['ok'] is False
    assert all(row['ok'] for row in result['summary'] if row['name'] != 'idx_fr_budgets_org_cc_period')


def test_check_mode_creates_no_extension_and_runs_no_analyze(db):
    build_six(db.params)
    failed, result = verify_module(db.params, check_mode=True, indexes=CHANGESET[:1], samples=0, amcheck='on',
                                   create_amcheck=True, analyze=True)
    assert not failed and result['changed'] is True and result['analyzed'] == []
    assert result['amcheck']['created'] is False and 'would be created' in result['indexes'][0]['amcheck']['message']
    assert db.query("SELECT count(*) FROM pg_extension WHERE extname = 'amcheck'")[0][0] == 0


def test_state_absent_proves_the_rollback(db):
    failed, result = verify_module(db.params, indexes=CHANGESET, state='absent')
    assert not failed and all(row['exists'] is False for row in result['summary'])
    build_six(db.params)
    failed, result = verify_module(db.params, indexes=CHANGESET, state='absent')
    assert failed and result['msg'].startswith('6 problem(s)') and 'still exists (valid' in result['msg']


@pytest.mark.parametrize('args, message', [
    (dict(indexes=[dict(name='idx_x', table='payments', columns=['org_id'], verify=dict(query='SELECT 1', sql='x'))]),
     "index idx_x: unknown verify key 'sql' (known: label, params, query)"),
    (dict(indexes=[dict(name='idx_x', table='payments', columns=['org_id'], verify='SELECT 1')]),
     'verify must be a dict with query, params and label'),
    (dict(indexes=CHANGESET, plan_check='maybe'), 'value of plan_check must be one of: fail, warn, skip'),
    (dict(indexes=CHANGESET, query_timeout='soon'), "invalid value 'soon' for query_timeout"),
])
def test_bad_input_is_a_clear_error(db, args, message):
    failed, result = verify_module(db.params, **args)
    assert failed and message in result['msg'], result['msg']
    assert 'exception' not in result and 'Traceback' not in result['msg']


def test_connection_failure_shows_no_secret(db):
    port = pgserver.free_port()
    failed, result = verify_module(dict(login_host='127.0.0.1', login_port=port, login_password='hunter2'),
                                   indexes=CHANGESET)
    assert failed and 'could not connect to PostgreSQL (host=127.0.0.1 port=%d' % port in result['msg']
    assert 'hunter2' not in json.dumps(result)


# --- latency on demo-sized tables, with pg_stat_statements -------------------------------------

@pytest.fixture(scope='module')
def big_server():
    """A server of its own (pg_stat_statements must be preloaded) holding the six tables at 200k rows."""
    with temporary_server('test-verify', settings={'shared_preload_libraries': 'pg_stat_statements'}) as server:
        conn = psycopg2.connect(server.dsn())
        demo_data.load(conn, BIG_ROWS, log=lambda *a: None)
        conn.cursor().execute('CREATE EXTENSION pg_stat_statements')
        conn.close()
        yield server


def test_latency_before_and_after_on_demo_data(big_server):
    params = dict(login_host='127.0.0.1', login_port=big_server.port, login_user='postgres', db='postgres')
    failed, before = verify_module(params, indexes=CHANGESET, phase='baseline', samples=5, query_budget=10)
    assert not failed, before['msg']
    assert before['sampling']['queries'] == 6 and before['sampling']['executions'] == 6 * (1 + 5)
    assert all(entry['plan']['scan'].startswith('Seq Scan') for entry in before['indexes'])
    build_six(params)
    failed, after = verify_module(params, indexes=CHANGESET, baseline=before['indexes'], samples=30)
    assert not failed, after['msg']
    version = after['server_version']
    for row, entry, old in zip(after['summary'], after['indexes'], before['indexes']):
        samples_before, samples_after = old['latency']['samples_ms'], entry['latency']['samples_ms']
        assert (len(samples_before), len(samples_after)) == (5, 30)
        # the figures are the measured samples', not the target's
        assert row['p95_before_ms'] == approx_ms(p95(samples_before))
        assert row['p95_after_ms'] == approx_ms(p95(samples_after))
        assert row['reduction_pct'] == round((row['p95_before_ms'] - row['p95_after_ms']) / row['p95_before_ms'] * 100, 1)
        assert row['meets_target'] is (row['reduction_pct'] >= 50)
        # a sequential scan of 200k rows against an index lookup of a few rows
        assert row['p95_after_ms'] < row['p95_before_ms'], (row['name'], samples_before, samples_after)
        assert row['scan_before'].startswith('Seq Scan') and row['plan'] == 'passed'
        stats = entry['pg_stat_statements']
        if version >= 140000:
            # this module's own executions are counted: 1 + 5 before, 1 + 30 after
            assert stats['status'] == 'reported' and stats['calls'] >= 37 and stats['mean_exec_time_ms'] > 0
        else:
            assert stats['status'] == 'unavailable' and 'query identifier' in stats['reason']
    assert after['sampling']['executions'] == 6 * 31 and after['sampling']['timeouts'] == 0


def test_a_slow_query_is_cut_by_statement_timeout(db):
    slow = dict(name='idx_slow', table='payments', columns=['amount'],
                verify=dict(label='slow', query='SELECT pg_sleep(1), count(*) FROM payments'))
    failed, result = verify_module(db.params, indexes=[slow], phase='baseline', samples=5, query_timeout='200ms')
    assert not failed, result['msg']
    latency = result['indexes'][0]['latency']
    assert latency['stopped'] == 'timeout' and latency['timed_out_at_ms'] == 200.0 and latency['lower_bound'] is True
    assert latency['p95_ms'] == 200.0 and latency['samples_ms'] == []
    assert result['sampling']['timeouts'] == 1 and result['sampling']['executions'] == 1


# --- the role: baseline before the build, verify and report after it --------------------------

def read_report(report_dir):
    return json.loads((report_dir / '001_franchise_indexes.local-db.latest.json').read_text())


def test_deploy_reports_before_after_then_no_change(db, tmp_path):
    deploy = ('playbooks/deploy_indexes.yml', '-i', 'inventories/local', '-e', 'pgindex_report_dir=%s' % tmp_path,
              '-e', 'pgindex_progress_interval=1')
    rc, out = playbook(db, *deploy)
    assert rc == 0, out
    assert recap(out)['changed'] >= 1 and recap(out)['failed'] == 0
    report = read_report(tmp_path)
    assert report['ok'] is True and report['database'] == db.name
    assert [row['name'] for row in report['indexes']] == SIX
    baseline = dict((entry['name'], entry) for entry in report['details']['baseline'])
    for row in report['indexes']:
        assert row['action'] == 'created' and row['build_duration_s'] > 0
        assert row['valid'] is True and row['definition_matches'] is True and row['plan'] == 'passed'
        assert row['samples_before'] == 5 and row['samples_after'] == 30
        assert row['p95_before_ms'] == approx_ms(p95(baseline[row['name']]['latency']['samples_ms']))
        assert row['reduction_pct'] == round((row['p95_before_ms'] - row['p95_after_ms']) / row['p95_before_ms'] * 100, 1)
    assert report['sampling']['baseline']['executions'] == 36 and report['sampling']['verify']['executions'] == 186
    markdown = (tmp_path / '001_franchise_indexes.local-db.latest.md').read_text()
    assert '| `idx_fr_overview_org_period` | created |' in markdown and '**PASSED**' in markdown
    assert 'verification of change set 001_franchise_indexes on local-db' in out

    rc, out = playbook(db, *deploy)
    assert rc == 0, out
    assert recap(out)['changed'] == 0
    report = read_report(tmp_path)
    # the short path: preflight found the six present, valid and identical; nothing built, nothing re-verified
    assert report['build']['short_path'] is True and report['verified'] is False and report['ok'] is True
    for row in report['indexes']:
        assert row['action'] == 'none' and row['p95_before_ms'] is None and row['samples_after'] == 0
    assert 'nothing was built and the verification was skipped (playbooks/verify_indexes.yml verifies on demand)' in out
    assert 'in the background' not in out
    # verify_indexes.yml verifies them on demand, with the latency sampling
    rc, out = playbook(db, 'playbooks/verify_indexes.yml', '-i', 'inventories/local', '-e', 'pgindex_report_dir=%s' % tmp_path)
    assert rc == 0, out
    report = read_report(tmp_path)
    assert report['verified'] is True and report['ok'] is True
    for row in report['indexes']:
        assert row['valid'] is True and row['samples_after'] == 30


def test_verify_playbook_reports_a_failure_then_fails(db, tmp_path):
    build_six(db.params)
    db.query('DROP INDEX idx_inv_batches_org_sku')
    db.query('CREATE INDEX idx_inv_batches_org_sku ON inventory_batches (sku, org_id)')
    rc, out = playbook(db, 'playbooks/verify_indexes.yml', '-i', 'inventories/local',
                       '-e', 'pgindex_report_dir=%s' % tmp_path, '-e', 'pgindex_latency_sampling=false')
    assert rc != 0 and recap(out)['failed'] == 1, out
    assert 'does not have the desired definition' in out and 'Traceback' not in out
    report = read_report(tmp_path)
    assert report['ok'] is False and len(report['problems']) == 1
    drifted = [row for row in report['indexes'] if row['name'] == 'idx_inv_batches_org_sku'][0]
    assert drifted['definition_matches'] is False and drifted['action'] is None
    assert '**drift**' in (tmp_path / '001_franchise_indexes.local-db.latest.md').read_text()

    for name in SIX:
        db.query('DROP INDEX %s' % name)
    rc, out = playbook(db, 'playbooks/verify_indexes.yml', '-i', 'inventories/local',
                       '-e', 'pgindex_report_dir=%s' % tmp_path, '-e', 'pgindex_verify_state=absent')
    assert rc == 0, out
    assert all(row['exists'] is False for row in read_report(tmp_path)['indexes'])

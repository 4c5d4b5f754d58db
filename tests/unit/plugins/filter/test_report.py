"""The pgindex_report filter: the whole run record from whatever a run produced, failures and gaps included."""
import sys
from pathlib import Path

from jinja2 import Undefined

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / '.collections'))

from ansible_collections.chefcloud.pgindex.plugins.filter.report import pgindex_report  # noqa: E402

CHANGESET = [dict(name='idx_a', table='ta', columns=['x']), dict(name='idx_b', table='tb', columns=['y'])]


def ok_entry(name, table, duration=1.5, action='created'):
    return dict(name=name, schema='public', table=table, action=action, changed=True, failed=False, msg='', error=None,
                duration_s=duration, queries=['CREATE INDEX CONCURRENTLY %s ON public.%s (x)' % (name, table)],
                cleaned_up=[], leftovers=[], attempts=1, blockers=[])


def failed_entry(name, table):
    """A failure as failure-truth shapes it - and as older code did: no duration_s at all."""
    return dict(name=name, schema='public', table=table, action=None, changed=False, failed=True,
                msg='lock_timeout waiting for the table lock', error='LockNotAvailable: canceling statement due to lock timeout',
                queries=['SET lock_timeout = 5000', 'CREATE INDEX CONCURRENTLY %s ON public.%s (y)' % (name, table)],
                cleaned_up=['DROP INDEX CONCURRENTLY IF EXISTS public.%s' % name],
                leftovers=[dict(index=name, schema='public', drop_sql='DROP INDEX CONCURRENTLY public.%s' % name)])


def summary(name, table, before=10.0, after=1.0, plan='passed'):
    reduction = round((before - after) / before * 100, 1)
    return dict(name=name, schema='public', table=table, state='present', exists=True, valid=True,
                definition_matches=True, size='16 kB', plan=plan, scan='Index Scan using %s' % name,
                p95_before_ms=before, p95_after_ms=after, reduction_pct=reduction, meets_target=reduction >= 50,
                at_least=False, samples_before=5, samples_after=30, problems=[])


def criteria(report):
    return dict((c['criterion'], c) for c in report['success_criteria'])


def test_nothing_at_all_still_renders():
    out = pgindex_report({})
    report = out['report']
    assert report['indexes'] == [] and report['executed_sql'] == [] and report['watch']['enabled'] is False
    assert report['operator']['name']            # the local user
    assert criteria(report)['No deployment errors']['status'] == 'not measured'
    assert criteria(report)['All indexes created']['status'] == 'fail'  # 0 of 0 is not a deployment
    assert out['lines'][0] == 'deploy of change set unnamed on None (database ?): FAILED'


def test_undefined_inputs_are_treated_as_missing():
    out = pgindex_report(dict(changeset='cs', indexes=CHANGESET, verification=Undefined(), build_result=Undefined(),
                              watch=Undefined(), preflight=None, baseline=Undefined()))
    report = out['report']
    assert [r['name'] for r in report['indexes']] == ['idx_a', 'idx_b']
    assert all(r['action'] is None and r['build_duration_s'] is None for r in report['indexes'])
    assert report['preflight']['ran'] is False and report['sampling'] == dict(baseline=None, verify=None)


def test_a_failed_index_without_duration_reaches_the_report_with_its_sql_and_leftover():
    build = dict(failed=True, msg='idx_b: lock_timeout waiting for the table lock',
                 indexes=[ok_entry('idx_a', 'ta'), failed_entry('idx_b', 'tb')],
                 leftovers=[dict(index='idx_b', schema='public', drop_sql='DROP INDEX CONCURRENTLY public.idx_b')])
    out = pgindex_report(dict(changeset='cs', host='db1', indexes=CHANGESET, build_result=build, started_at='2026-12-01T00:00:00Z'))
    report = out['report']
    rows = dict((r['name'], r) for r in report['indexes'])
    assert rows['idx_b']['build_failed'] is True and rows['idx_b']['build_duration_s'] is None
    assert rows['idx_b']['build_error'].startswith('LockNotAvailable')
    assert report['ok'] is False
    assert [q['sql'] for q in report['executed_sql']] == [
        'CREATE INDEX CONCURRENTLY idx_a ON public.ta (x)', 'SET lock_timeout = 5000',
        'CREATE INDEX CONCURRENTLY idx_b ON public.tb (y)']
    assert report['leftovers'][0]['drop_sql'] == 'DROP INDEX CONCURRENTLY public.idx_b'
    c = criteria(report)
    assert c['All indexes created']['measured'] == '1/2' and c['All indexes created']['status'] == 'fail'
    assert c['No deployment errors']['status'] == 'fail' and 'idx_b: LockNotAvailable' in c['No deployment errors']['detail']
    assert any('idx_b' in line and 'FAILED' in line for line in out['lines'])


def test_legacy_results_shape_is_read_too():
    results = dict(results=[dict(ok_entry('idx_a', 'ta'), item={}), {'skipped': True}])
    report = pgindex_report(dict(indexes=CHANGESET[:1], results=results))['report']
    assert report['indexes'][0]['action'] == 'created' and report['indexes'][0]['build_duration_s'] == 1.5


def test_success_criteria_from_verification_and_watch():
    build = dict(failed=False, indexes=[ok_entry('idx_a', 'ta', 2.0), ok_entry('idx_b', 'tb', 3.0)],
                 estimates=[dict(name='idx_a', estimate_s=4.0), dict(name='idx_b', estimate_s=3.0)])
    verification = dict(ok=True, state='present', database='chefcloud', server_version=180001, problems=[], warnings=[],
                        summary=[summary('idx_a', 'ta'), summary('idx_b', 'tb', 10.0, 6.0)], indexes=[],
                        sampling=dict(executions=60, seconds=0.5))
    watch = dict(enabled=True, verdict='pass', regressed=False, watched_s=60, duration_s=60, interval_s=10,
                 health=dict(error_rate_changed=False, rollbacks_per_s=0.0, rollbacks_per_s_before=0.0, deadlocks=0))
    report = pgindex_report(dict(indexes=CHANGESET, build_result=build, verification=verification, watch=watch,
                                 awx=dict(awx_user_name='alice', awx_job_id=42, awx_workflow_job_id=7,
                                          awx_workflow_job_name='Deploy with approval', awx_secret_token='x')))['report']
    c = criteria(report)
    assert c['All indexes created']['status'] == 'pass' and c['All indexes created']['measured'] == '2/2'
    assert c['No deployment errors']['status'] == 'pass'
    assert c['p95 latency improvement']['status'] == 'fail' and 'idx_b' in c['p95 latency improvement']['detail']
    assert c['No application errors']['status'] == 'pass'
    assert c['Index usage confirmed']['status'] == 'pass'
    rows = dict((r['name'], r) for r in report['indexes'])
    assert rows['idx_a']['estimate_s'] == 4.0 and rows['idx_a']['estimate_error_pct'] == -50.0
    assert report['operator'] == dict(name='alice', email=None, source='awx (awx_user_name)')
    assert report['awx']['workflow_job_id'] == 7 and 'workflow_approvals/?workflow_job=7' in report['awx']['approval']['detail']
    assert 'awx_secret_token' not in report['awx']['extra_vars']
    assert report['database'] == 'chefcloud'


def test_a_regressed_watch_fails_the_report_and_says_why():
    watch = dict(enabled=True, verdict='regressed', regressed=True,
                 tripped_messages=['HOT ratio on public.ta fell from 98.0 % to 3.0 % (limit: a drop of 20 points)'],
                 health=dict(error_rate_changed=False))
    rollback = dict(reason='hot_ratio on public.ta', indexes=['idx_a'], verification=dict(ok=True),
                    build_result=dict(indexes=[dict(ok_entry('idx_a', 'ta', action='dropped'),
                                                    queries=['DROP INDEX CONCURRENTLY public.idx_a'])]))
    report = pgindex_report(dict(indexes=CHANGESET[:1], build_result=dict(indexes=[ok_entry('idx_a', 'ta')]),
                                 watch=watch, rollback=rollback))['report']
    assert report['ok'] is False and 'HOT ratio on public.ta fell' in report['problems'][0]
    assert report['rollback'] == dict(rolled_back=True, reason='hot_ratio on public.ta', indexes=['idx_a'],
                                      verified_absent=True)
    assert [(q['phase'], q['sql']) for q in report['executed_sql']][-1] == ('rollback', 'DROP INDEX CONCURRENTLY public.idx_a')
    created = criteria(report)['All indexes created']
    assert created['status'] == 'fail' and created['measured'] == '0/1' and "guard's rollback: idx_a" in created['detail']


def test_preflight_disk_figures_and_the_host_that_measured_them():
    checks = [dict(name='server', status='pass', message='PostgreSQL 18.1'),
              dict(name='disk', status='pass', message='enough space',
                   data=dict(host='db1', filesystems=[dict(filesystem='/dev/sda1', mount='/', size_bytes=100,
                                                           available_bytes=50)]))]
    report = pgindex_report(dict(preflight_results=checks))['report']
    assert report['preflight']['status'] == 'pass' and report['preflight']['disk']['measured_on'] == 'db1'
    assert report['preflight']['disk']['filesystems'][0]['mount'] == '/'


def test_a_dry_run_records_the_planned_sql_and_measures_nothing():
    build = dict(failed=False, indexes=[dict(ok_entry('idx_a', 'ta'), duration_s=0.0)])
    report = pgindex_report(dict(indexes=CHANGESET[:1], build_result=build, check_mode=True))['report']
    assert report['ok'] is True and report['executed_sql'][0]['phase'] == 'planned (check mode)'
    assert set(c['status'] for c in report['success_criteria']) == {'not measured'}

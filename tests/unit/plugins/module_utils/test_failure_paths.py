"""Failure paths without a server: the planner, RetryPolicy, lanes whose work raises, result shape."""
import pytest

from ansible_collections.chefcloud.pgindex.plugins.module_utils import plan as planner, results
from ansible_collections.chefcloud.pgindex.plugins.module_utils.catalog import IndexState
from ansible_collections.chefcloud.pgindex.plugins.module_utils.errors import DriftError, PgIndexError
from ansible_collections.chefcloud.pgindex.plugins.module_utils.execute import MAX_RETRY_DELAY, RetryPolicy
from ansible_collections.chefcloud.pgindex.plugins.module_utils.index_set import failed_result, outcome
from ansible_collections.chefcloud.pgindex.plugins.module_utils.index_spec import IndexSpec
from ansible_collections.chefcloud.pgindex.plugins.module_utils.schedule import lanes, run_lanes
from ansible_collections.chefcloud.pgindex.plugins.module_utils.session import one_line_error, version_text

SPEC = IndexSpec.from_params(dict(name='idx_po', table='purchase_orders', columns=['org_id', 'status']))
DEFINITION = 'CREATE INDEX idx_po ON public.purchase_orders USING btree (org_id, status)'


def existing(valid=True, table='purchase_orders', definition=DEFINITION):
    return IndexState(1, 'public', 'idx_po', 'public', table, valid, True, True, definition, 8192)


# ------------------------------------------------------------------ planner
def test_planner_creates_a_missing_index_with_its_cleanup():
    plan = planner.plan_present(SPEC, None, DEFINITION)
    assert plan.action == 'created' and [s.kind for s in plan.steps] == ['create']
    assert plan.steps[0].index == ('public', 'idx_po') and plan.steps[0].cleanup is not None


def test_planner_does_nothing_for_an_identical_index():
    assert planner.plan_present(SPEC, existing(), DEFINITION).steps == []


def test_planner_rebuilds_an_invalid_index_unless_told_to_fail():
    plan = planner.plan_present(SPEC, existing(valid=False), DEFINITION)
    assert plan.action == 'rebuilt' and [s.kind for s in plan.steps] == ['drop', 'create']
    with pytest.raises(PgIndexError, match='exists but is INVALID'):
        planner.plan_present(SPEC, existing(valid=False), DEFINITION, on_invalid='fail')


def test_planner_refuses_an_invalid_index_another_session_builds():
    builds = [dict(pid=42, user='app', application_name='psql', phase='building index', running_s=3)]
    with pytest.raises(PgIndexError, match='being built right now by another session: pid 42'):
        planner.plan_present(SPEC, existing(valid=False), DEFINITION, builds=builds)


def test_planner_drift_fails_or_replaces():
    other = 'CREATE INDEX idx_po ON public.purchase_orders USING btree (org_id)'
    with pytest.raises(DriftError, match='exists with another definition'):
        planner.plan_present(SPEC, existing(definition=other), DEFINITION, on_drift='fail')
    plan = planner.plan_present(SPEC, existing(definition=other), DEFINITION, on_drift='replace')
    assert plan.action == 'replaced' and [s.kind for s in plan.steps] == ['create', 'drop', 'rename']


def test_planner_never_touches_an_index_of_that_name_on_another_table():
    for plan in (lambda: planner.plan_present(SPEC, existing(table='payments'), DEFINITION, on_drift='replace'),
                 lambda: planner.plan_absent(SPEC, existing(table='payments'))):
        with pytest.raises(DriftError, match='exists on table public.payments, not on public.purchase_orders'):
            plan()


def test_planner_drops_an_existing_index_and_nothing_when_gone():
    assert [s.kind for s in planner.plan_absent(SPEC, existing()).steps] == ['drop']
    assert planner.plan_absent(SPEC, None).steps == []


# ------------------------------------------------------------------ RetryPolicy
def test_retry_delay_grows_exponentially_with_full_jitter_and_a_cap():
    low = RetryPolicy(retry_delay=2.0, rng=lambda: 0.0)
    high = RetryPolicy(retry_delay=2.0, rng=lambda: 1.0)
    assert [high.delay(n) for n in (1, 2, 3)] == [2.0, 4.0, 8.0]
    assert [low.delay(n) for n in (1, 2, 3)] == [1.0, 2.0, 4.0]
    assert high.delay(20) == MAX_RETRY_DELAY and low.delay(20) == MAX_RETRY_DELAY / 2


# ------------------------------------------------------------------ lanes whose work raises
ITEMS = [dict(name='a1', table='a', schema='public'), dict(name='a2', table='a', schema='public'),
         dict(name='b1', table='b', schema='public')]


def test_a_lane_whose_work_raises_becomes_a_failed_result_not_a_lost_one():
    def work(index):
        if index['name'] == 'a1':
            raise RuntimeError('connect exploded')
        return dict(name=index['name'], failed=False)
    by_lane = run_lanes(lanes(ITEMS), 1, work, stop_on_failure=True)
    assert by_lane[0][0] == dict(name='a1', failed=True, changed=False, msg='RuntimeError: connect exploded',
                                 error='RuntimeError: connect exploded')
    assert by_lane[0][1] is None and by_lane[1] == [None]      # nothing started after the failure


def test_a_raising_lane_uses_on_exception_and_others_go_on_with_continue():
    def work(index):
        if index['name'] == 'b1':
            raise KeyError('boom')
        return dict(name=index['name'], failed=False)
    by_lane = run_lanes(lanes(ITEMS), 2, work, stop_on_failure=False,
                        on_exception=lambda index, exc: failed_result(index, exc, 1))
    failed = by_lane[1][0]
    assert failed['failed'] and failed['msg'] == "public.b1: KeyError: 'boom'" and failed['error'] == "KeyError: 'boom'"
    assert set(results.RESULT_KEYS) <= set(failed) and isinstance(failed['duration_s'], float)
    assert [r['failed'] for r in by_lane[0]] == [False, False]


def test_the_set_fails_with_the_first_cause_and_every_leftover():
    first = failed_result(ITEMS[0], RuntimeError('first'), 1)
    second = results.complete(dict(name='b1', schema='public', table='b', failed=True, msg='b1 broke', _order=2,
                                   leftovers=[results.leftover('public', 'b1')]))
    skipped = results.not_started('a2', 'public', 'a', 'an earlier build failed (on_error=stop)')
    summary = outcome([first, skipped, second])
    assert summary['failed'] is True
    assert summary['msg'].startswith('public.a1: RuntimeError: first ')
    assert 'public.b1 left INVALID: run DROP INDEX CONCURRENTLY IF EXISTS "public"."b1";' in summary['msg']
    assert summary['msg'].endswith('[2 of 3 index(es) failed (also b1); not started: a2]')
    assert summary['leftovers'] == [dict(index='b1', schema='public', observed=True,
                                         drop_sql='DROP INDEX CONCURRENTLY IF EXISTS "public"."b1";')]
    assert '_order' not in first and skipped['failed'] is False and skipped['action'] == 'not started'


def test_one_line_errors_and_version_text():
    assert one_line_error(RuntimeError('two\nlines  here')) == 'RuntimeError: two lines here'
    assert one_line_error(PgIndexError('index x: broken')) == 'PgIndexError: index x: broken'
    assert [version_text(v) for v in (180001, 140003, 130000, 90624)] == ['18.1', '14.3', '13.0', '9.6.24']
    assert results.drop_sql('my schema', 'IDX "q"') == 'DROP INDEX CONCURRENTLY IF EXISTS "my schema"."IDX ""q""";'


# ------------------------------------------------------------------ the module base class
def run_base(work):
    import contextlib
    import io
    import json

    from ansible.module_utils.testing import patch_module_args

    from ansible_collections.chefcloud.pgindex.plugins.module_utils.module import PgIndexModule
    out = io.StringIO()
    with patch_module_args({'_ansible_check_mode': False}), contextlib.redirect_stdout(out):
        with pytest.raises(SystemExit):
            PgIndexModule('pg_test', {}).run(work)
    return json.loads(out.getvalue())


@pytest.mark.parametrize('exc, text', [
    (RuntimeError('connect\nexploded'), 'RuntimeError: connect exploded'),
    (__import__('psycopg2').errors.UndefinedTable('relation "x" does not exist'),
     'UndefinedTable: relation "x" does not exist'),
])
def test_any_exception_in_a_module_is_one_line_never_a_traceback(exc, text):
    def work(module):
        raise exc
    result = run_base(work)
    assert result['failed'] is True and result['msg'] == text and result['error'] == text
    assert 'exception' not in result and 'Traceback' not in json_text(result)


def json_text(result):
    import json
    return json.dumps(result)

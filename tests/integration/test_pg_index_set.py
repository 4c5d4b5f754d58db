"""pg_index_set: the change set in one task, tables in parallel lanes, stop or continue after a failure."""
import threading

from helpers.modules import run_module
from helpers.playbooks import SIX
from helpers.sessions import OldSnapshot, wait_until

CHANGESET = [
    dict(name='idx_fr_overview_org_period', table='franchise_overview', columns=['org_id', 'period'], verify={}),
    dict(name='idx_fr_rankings_org_metric_period', table='franchise_rankings', columns=['org_id', 'metric', 'period']),
    dict(name='idx_fr_budgets_org_cc_period', table='franchise_budgets', columns=['org_id', 'cost_center', 'period']),
    dict(name='idx_inv_batches_org_sku', table='inventory_batches', columns=['org_id', 'sku']),
    dict(name='idx_po_org_status_created', table='purchase_orders', columns=['org_id', 'status', 'created_at']),
    dict(name='idx_payments_org_status_created', table='payments', columns=['org_id', 'status', 'created_at']),
]


def index_set(db, check_mode=False, **args):
    return run_module('pg_index_set', dict(db.params, **args), check_mode=check_mode)


def test_builds_the_change_set_then_changes_nothing(db):
    failed, result = index_set(db, check_mode=True, indexes=CHANGESET)
    assert not failed and result['changed'] is True
    assert [r['action'] for r in result['indexes']] == ['created'] * 6
    assert all(db.index(name) is None for name in SIX)
    failed, result = index_set(db, indexes=CHANGESET, defaults={'lock_timeout': '10s'})
    assert not failed, result['msg'] if failed else ''
    assert [r['name'] for r in result['indexes']] == SIX            # change-set order
    assert all(r['action'] == 'created' and r['valid'] for r in result['indexes'])
    version = int(db.query('SHOW server_version_num')[0][0])
    assert result['parallelism'] == (2 if version >= 140000 else 1)
    assert all(db.index(name)[0] for name in SIX)
    failed, result = index_set(db, indexes=CHANGESET)
    assert not failed and result['changed'] is False and {r['action'] for r in result['indexes']} == {'none'}


def test_tables_build_at_the_same_time(db):
    """Two lanes wait together for an old snapshot: both builds are seen in progress at once."""
    snapshot = OldSnapshot(db)
    seen_together = []

    def watch():
        wait_until(db, 'SELECT count(*) = 2 FROM pg_stat_progress_create_index', timeout=60)
        seen_together.append(True)
        snapshot.end()
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        failed, result = index_set(db, indexes=CHANGESET[:2], parallelism=2)
    finally:
        watcher.join(70)
        snapshot.end()
    assert not failed and seen_together == [True]


def test_stop_or_continue_after_a_failure(db):
    broken = dict(name='idx_broken', table='payments', columns=['status'], unique=True)   # duplicates: fails
    items = [broken, CHANGESET[5], CHANGESET[0]]
    failed, result = index_set(db, indexes=items, parallelism=1)
    assert failed and result['msg'].startswith('create index public.idx_broken failed: could not create unique index')
    assert result['msg'].endswith('[1 of 3 index(es) failed; not started: idx_payments_org_status_created, '
                                  'idx_fr_overview_org_period]')
    actions = {r['name']: r['action'] for r in result['indexes']}
    assert actions == {'idx_broken': None, 'idx_payments_org_status_created': 'not started',
                       'idx_fr_overview_org_period': 'not started'}
    assert db.index('idx_broken') is None and db.index('idx_fr_overview_org_period') is None
    failed, result = index_set(db, indexes=items, parallelism=1, on_error='continue')
    assert failed and [r['action'] for r in result['indexes']] == [None, 'created', 'created']
    assert db.index('idx_fr_overview_org_period')[0] is True


def test_defaults_apply_to_every_index_and_bad_items_are_clear_errors(db):
    index_set(db, indexes=CHANGESET[:2])
    failed, result = index_set(db, indexes=CHANGESET[:2][::-1], defaults={'state': 'absent'})
    assert not failed and [r['action'] for r in result['indexes']] == ['dropped', 'dropped']
    assert db.index(SIX[0]) is None and db.index(SIX[1]) is None
    failed, result = index_set(db, indexes=[dict(name='idx_x', table='payments')])
    assert failed and result['msg'] == 'index idx_x: columns must list at least one column when state is present'
    failed, result = index_set(db, indexes=[CHANGESET[0], CHANGESET[0]])
    assert failed and result['msg'] == 'indexes lists index public.idx_fr_overview_org_period twice (entries 1 and 2)'
    assert db.index(SIX[0]) is None


def test_lanes_and_workers_follow_the_database_host_and_each_result_has_its_estimate(db):
    two = CHANGESET[:2]
    failed, result = index_set(db, check_mode=True, indexes=two, db_cpus=8, cpu_share=1.0)
    assert not failed
    # two lanes from PostgreSQL 14 on; before it concurrent builds wait for each other, so one lane
    lanes = 2 if int(db.query('SHOW server_version_num')[0][0]) >= 140000 else 1
    assert result['concurrency']['lanes'] == lanes and result['parallelism'] == lanes
    assert result['concurrency']['workers'] == 8 // lanes - 1 and result['concurrency']['budget'] == 8
    assert all(r['estimate_s'] > 0 for r in result['indexes'])
    # the builds' sessions get the workers: the module sets max_parallel_maintenance_workers for them
    failed, result = index_set(db, indexes=two, db_cpus=2, cpu_share=0.5)
    assert not failed and result['concurrency']['lanes'] == 1 and result['concurrency']['workers'] == 1
    assert 'cpu_share 0.50: 2 of 2 CPU(s)' in result['concurrency']['rule']
    # nothing to build: nothing estimated
    failed, result = index_set(db, indexes=two, db_cpus=2)
    assert [r['estimate_s'] for r in result['indexes']] == [0.0, 0.0]
    # an explicit setting wins over the rule
    failed, result = index_set(db, check_mode=True, indexes=two, db_cpus=8, parallelism=1,
                               defaults={'max_parallel_maintenance_workers': 1})
    assert result['parallelism'] == 1 and result['concurrency']['workers'] == 1
    failed, result = index_set(db, check_mode=True, indexes=two, db_cpus=8, cpu_share=2.0)
    assert failed and result['msg'] == 'cpu_share must be above 0 and at most 1, got 2.0'

"""pg_index_progress: a running build is visible, with its phase and what it waits for."""
from helpers.modules import run_module
from helpers.sessions import BackgroundStatement, OldSnapshot, wait_for_build_waiting

CREATE_SQL = ('CREATE INDEX CONCURRENTLY "idx_fr_overview_org_period" ON "public"."franchise_overview"'
              ' USING btree ("org_id", "period")')


def test_reports_a_running_build_and_what_it_waits_for(db):
    failed, result = run_module('pg_index_progress', dict(db.params, tables=['franchise_overview']))
    assert not failed and result['builds'] == [] and result['changed'] is False
    snapshot = OldSnapshot(db)
    build = BackgroundStatement(db, CREATE_SQL)
    try:
        wait_for_build_waiting(db, build.pid)
        failed, result = run_module('pg_index_progress', dict(db.params, tables=[
            {'name': 'x', 'table': 'franchise_overview'}, 'public.payments', 'no_such_table']))
        assert not failed
        [row] = result['builds']
        assert row['pid'] == build.pid and row['index'] == 'idx_fr_overview_org_period'
        assert row['table'] == 'franchise_overview' and row['command'] == 'CREATE INDEX CONCURRENTLY'
        assert row['phase'].startswith('waiting for') and row['waiting_for'] == 'virtualxid'
        assert row['line'].startswith('idx_fr_overview_org_period on public.franchise_overview: waiting for')
        # the wait names its blocker: the session holding the old snapshot
        blocker = snapshot.conn.get_backend_pid()
        assert [b['pid'] for b in row['blockers']] == [blocker] and row['blockers'][0]['user'] == 'postgres'
        assert row['blockers'][0]['state'] == 'idle in transaction' and row['blockers'][0]['xact_age_s'] >= 0
        assert row['line'].endswith('[waiting for a virtualxid lock: older transactions; blocked by pid %d user=postgres '
                                    'state=idle in transaction transaction age=%.1f s]'
                                    % (blocker, row['blockers'][0]['xact_age_s']))
        # a build on another table is not reported when tables are given
        failed, result = run_module('pg_index_progress', dict(db.params, tables=['payments']))
        assert result['builds'] == []
    finally:
        snapshot.end()
        build.join()
    failed, result = run_module('pg_index_progress', dict(db.params, tables=['franchise_overview']))
    assert result['builds'] == []


def test_bad_table_item_is_a_clear_error(db):
    failed, result = run_module('pg_index_progress', dict(db.params, tables=[42]))
    assert failed and result['msg'] == 'tables: each item must be a table name or a dict with table, got 42'


def test_percent_follows_the_counter_of_the_phase():
    from ansible_collections.chefcloud.pgindex.plugins.module_utils.progress import describe, percent
    row = dict(index='idx', schema='public', table='t', phase='building index: scanning table', blocks_done=25,
               blocks_total=200, tuples_done=0, tuples_total=0, lockers_done=0, lockers_total=0, elapsed_s=3.25,
               waiting_for=None)
    row['percent'] = percent(row)
    assert row['percent'] == 12.5
    assert describe(row) == 'idx on public.t: building index: scanning table, 12.5% (blocks 25/200), 3.2 s'
    row.update(blocks_total=0, tuples_done=3, tuples_total=4, waiting_for='relation')
    row['percent'] = percent(row)
    assert describe(row) == ('idx on public.t: building index: scanning table, 75.0% (tuples 3/4), 3.2 s'
                             ' [waiting for a relation lock: the table]')

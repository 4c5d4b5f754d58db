"""module_utils/schedule.py: one table's indexes in one lane, lanes in parallel, stop after a failure."""
import threading
import time

from ansible_collections.chefcloud.pgindex.plugins.module_utils.schedule import default_parallelism, lanes, run_lanes

INDEXES = [dict(name='a1', table='a'), dict(name='a2', table='a'), dict(name='b1', table='b'),
           dict(name='c1', table='c'), dict(name='c2', table='c', schema='other'), dict(name='a3', table='a')]


def test_lanes_group_a_table_in_change_set_order():
    assert [[i['name'] for i in lane] for lane in lanes(INDEXES)] == [['a1', 'a2', 'a3'], ['b1'], ['c1'], ['c2']]


def test_run_lanes_never_runs_one_table_twice_at_once_and_respects_parallelism():
    running, peak, seen = {}, [0], []
    lock = threading.Lock()

    def work(index):
        with lock:
            assert index['table'] + index.get('schema', '') not in running
            running[index['table'] + index.get('schema', '')] = True
            peak[0] = max(peak[0], len(running))
            seen.append(index['name'])
        time.sleep(0.05)
        with lock:
            del running[index['table'] + index.get('schema', '')]
        return dict(name=index['name'], failed=False)

    results = run_lanes(lanes(INDEXES), 2, work)
    assert [[r['name'] for r in lane] for lane in results] == [['a1', 'a2', 'a3'], ['b1'], ['c1'], ['c2']]
    assert peak[0] == 2 and sorted(seen) == sorted(i['name'] for i in INDEXES)
    assert seen.index('a1') < seen.index('a2') < seen.index('a3')


def test_nothing_starts_after_a_failure_when_stopping():
    def work(index):
        return dict(name=index['name'], failed=index['name'] == 'a1')
    results = run_lanes(lanes(INDEXES), 1, work, stop_on_failure=True)
    assert results[0] == [dict(name='a1', failed=True), None, None] and results[1:] == [[None], [None], [None]]
    results = run_lanes(lanes(INDEXES), 1, work, stop_on_failure=False)
    assert all(r is not None for lane in results for r in lane)


def test_default_parallelism_follows_the_server_version():
    assert default_parallelism(130016) == 1 and default_parallelism(140000) == 2 and default_parallelism(180001) == 2
    assert run_lanes([], 2, lambda index: {}) == []

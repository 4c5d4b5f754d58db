"""module_utils/concurrency.py: lanes and parallel workers sized to the database host."""
import pytest

from ansible_collections.chefcloud.pgindex.plugins.module_utils.concurrency import size

PG18, PG13 = 180000, 130000


def test_default_gives_a_worker_before_a_second_lane():
    # 2 CPUs, 6 tables: 2 processes at least (the runbook's one build takes 3): one lane with one parallel worker
    assert (size(2, 6, PG18)['lanes'], size(2, 6, PG18)['workers'], size(2, 6, PG18)['budget']) == (1, 1, 2)
    # 16 CPUs: 8 processes; half as many lanes, each build with a worker for its scan and sort
    assert (size(16, 6, PG18)['lanes'], size(16, 6, PG18)['workers']) == (4, 1)
    assert (size(16, 2, PG18)['lanes'], size(16, 2, PG18)['workers']) == (2, 3)
    assert (size(16, 1, PG18)['lanes'], size(16, 1, PG18)['workers']) == (1, 7)
    # 1 CPU: one build, no worker
    assert (size(1, 6, PG18)['lanes'], size(1, 6, PG18)['workers'], size(1, 6, PG18)['budget']) == (1, 0, 1)


def test_off_peak_uses_the_whole_machine_lanes_first():
    sized = size(2, 6, PG18, off_peak=True)
    assert (sized['lanes'], sized['workers'], sized['budget']) == (2, 0, 2)
    assert (size(16, 6, PG18, off_peak=True)['lanes'], size(16, 6, PG18, off_peak=True)['workers']) == (6, 1)
    assert 'off-peak' in sized['rule']
    assert (size(8, 2, PG18, off_peak=True)['lanes'], size(8, 2, PG18, off_peak=True)['workers']) == (2, 3)


def test_workers_stay_within_the_server_settings():
    assert size(64, 1, PG18, max_parallel_workers=8, max_worker_processes=16, cpu_share=1.0)['workers'] == 8
    # one worker process stays free for the server's other background workers
    assert size(64, 1, PG18, max_parallel_workers=8, max_worker_processes=8, cpu_share=1.0)['workers'] == 7
    assert size(64, 2, PG18, max_parallel_workers=8, cpu_share=1.0)['workers'] == 4
    assert size(64, 1, PG18, max_parallel_workers=8, max_worker_processes=4, cpu_share=1.0)['workers'] == 3
    assert size(64, 1, PG18, max_parallel_workers=0, cpu_share=1.0)['workers'] == 0


def test_one_lane_before_postgresql_14():
    sized = size(16, 6, PG13)
    assert (sized['lanes'], sized['workers']) == (1, 7)


def test_unknown_cpu_count_keeps_the_former_defaults():
    assert size(0, 6, PG18) == dict(
        lanes=2, workers=None, budget=None, cpus=None,
        rule="CPU count of the database host unknown: 2 lane(s), the server's parallel workers")
    assert size(None, 6, PG13)['lanes'] == 1
    assert size(0, 1, PG18)['lanes'] == 1


def test_at_least_one_cpu_and_a_valid_share():
    assert size(1, 6, PG18, cpu_share=0.1)['budget'] == 1
    assert size(8, 6, PG18, cpu_share=0.1)['budget'] == 2   # at least 2 on a host with 2 CPUs or more
    with pytest.raises(ValueError, match='cpu_share must be above 0 and at most 1'):
        size(4, 2, PG18, cpu_share=1.5)

"""module_utils/eta.py: estimates before a build, ETA from the observed rate of the current phase."""
from ansible_collections.chefcloud.pgindex.plugins.module_utils import eta


def test_estimate_grows_with_the_table_and_shrinks_with_parallel_workers():
    small = eta.estimate_seconds(10 * 1024 * 1024)
    big = eta.estimate_seconds(1000 * 1024 * 1024)
    assert eta.FIXED_SECONDS < small < big
    assert big == round(eta.FIXED_SECONDS + 1000 * 1024 * 1024 / float(eta.DEFAULT_BYTES_PER_SECOND), 1)
    # one worker halves the parallel part (the scan and the sort)
    one = eta.estimate_seconds(1000 * 1024 * 1024, workers=1)
    assert abs(one - (eta.FIXED_SECONDS + (big - eta.FIXED_SECONDS) * (1 - eta.PARALLEL_PART / 2))) <= 0.1
    assert eta.estimate_seconds(1000 * 1024 * 1024, workers=2) < one < big
    assert eta.estimate_seconds(0) == eta.FIXED_SECONDS and eta.estimate_seconds(None) == eta.FIXED_SECONDS


def test_phase_shares_cover_a_whole_build_in_order():
    assert abs(sum(share for phase, share in eta.PHASE_SHARES) - 1.0) < 1e-9
    assert eta.share_after('initializing') == 1.0
    assert abs(eta.share_after('building index: scanning table') - 0.80) < 1e-9
    assert eta.share_before('building index: scanning table') == 0
    assert abs(eta.share_before('building index: sorting live tuples') - 0.20) < 1e-9
    assert eta.share_after('index validation: scanning table') == 0.0
    assert eta.share_after('waiting for old snapshots') == 0.0
    assert eta.share_before('waiting for old snapshots') is None


def test_a_counted_phase_extrapolates_the_build_s_own_pace():
    # halfway through the scan (20 % of the build): 10 % of the build done in 4 s -> 36 s left
    assert eta.remaining_seconds('building index: scanning table', 500, 1000, 0, 0.0, elapsed_s=4.0) == 36.0
    # loading 40 % of the tuples: 0.72 + 0.13 * 0.4 = 77.2 % done in 20 s
    part = 0.72 + 0.13 * 0.4
    assert eta.remaining_seconds('building index: loading tuples in tree', 40, 100, 0, 0.0,
                                 elapsed_s=20.0) == round(20 * (1 - part) / part, 1)
    # the last phase nearly done: little left
    assert eta.remaining_seconds('index validation: scanning table', 990, 1000, 0, 0.0, elapsed_s=50.0) < 1.0


def test_a_sort_is_sized_by_the_time_the_build_took_to_reach_it():
    # the scan (20 %) took 6 s: the build takes ~30 s; 10 s in, 20 s are left
    assert eta.remaining_seconds('building index: sorting live tuples', 1000, 1000, 1000, 4.0, elapsed_s=10.0,
                                 phase_started_s=6.0) == 20.0
    # past the expected end of the sort: at least the phases after it (28 % of 30 s)
    assert eta.remaining_seconds('building index: sorting live tuples', 1000, 1000, 1000, 4.0, elapsed_s=40.0,
                                 phase_started_s=6.0) == round(30 * 0.28, 1)


def test_without_a_pace_the_estimate_minus_the_elapsed_time_is_used():
    assert eta.remaining_seconds('building index: scanning table', 0, 1000, 0, 0.0, estimate_s=30, elapsed_s=12) == 18
    assert eta.remaining_seconds('initializing', 0, 0, 0, 0.0, estimate_s=30, elapsed_s=40) == 0.0
    assert eta.remaining_seconds('building index: sorting live tuples', 0, 0, 0, 3.0) is None
    # a wait: no work is left after it, its end depends on the blockers
    assert eta.remaining_seconds('waiting for old snapshots', 0, 0, 0, 3.0, estimate_s=30, elapsed_s=5) == 0.0


def test_tracker_passes_each_reading_to_the_model():
    tracker = eta.EtaTracker()
    row = dict(phase='building index: scanning table', blocks_done=10, blocks_total=1000, tuples_total=0,
               elapsed_s=0.5)
    assert tracker.update(7, row, now=10.0, estimate_s=40) == 39.5      # 0.2 % done: too early, the estimate
    row.update(blocks_done=500, elapsed_s=4.0)
    assert tracker.update(7, row, now=13.5) == 36.0
    row.update(phase='building index: sorting live tuples', elapsed_s=10.0, phase_started_s=6.0)
    assert tracker.update(7, row, now=19.5) == 20.0


def test_overall_eta_adds_the_queued_builds_spread_over_the_lanes():
    assert eta.overall_remaining([10.0, 4.0], [6.0, 6.0], lanes=2) == 16.0
    assert eta.overall_remaining([], [6.0, 6.0, 6.0], lanes=3) == 6.0
    assert eta.overall_remaining([None], [6.0], lanes=1) is None


def test_human_durations():
    assert [eta.human_seconds(s) for s in (None, 4.4, 65, 3725)] == ['?', '4 s', '1 min 05 s', '1 h 02 min']


def test_a_sort_that_spills_is_done_during_the_scan():
    mib = 1024 * 1024
    assert not eta.sort_spills(85 * mib, 64 * mib)           # 1M rows of a runbook table: sorted in memory
    assert eta.sort_spills(420 * mib, 64 * mib)              # 5M rows: runs written during the scan
    assert not eta.sort_spills(420 * mib, 1024 * mib)
    assert not eta.sort_spills(None, 64 * mib) and not eta.sort_spills(85 * mib, None)
    # the scan is most of a spilling build: halfway through it, far less is left than with an in-memory sort
    in_memory = eta.remaining_seconds('building index: scanning table', 500, 1000, 0, 0.0, elapsed_s=10.0)
    spilling = eta.remaining_seconds('building index: scanning table', 500, 1000, 0, 0.0, elapsed_s=10.0, spills=True)
    assert spilling == round(10 * (1 - 0.31) / 0.31, 1) and spilling < in_memory
    assert abs(sum(share for phase, share in eta.SPILLING_SHARES) - 1.0) < 1e-9


def test_a_counter_that_stops_no_longer_sets_the_pace():
    tracker = eta.EtaTracker()
    row = dict(phase='building index: scanning table', blocks_done=880, blocks_total=1000, tuples_total=0,
               elapsed_s=2.0)
    first = tracker.update(3, row, now=0.0, estimate_s=10)
    assert first == round(2.0 * (1 - 0.176) / 0.176, 1)
    # the leader's counter stays at 88 % while its parallel worker scans on: back to the estimate
    row.update(elapsed_s=4.0)
    assert tracker.update(3, row, now=2.0, estimate_s=10) == 6.0

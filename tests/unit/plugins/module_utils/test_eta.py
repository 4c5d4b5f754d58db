"""module_utils/eta.py: estimates before a build, ETA from the observed rate of the current phase."""
from ansible_collections.chefcloud.pgindex.plugins.module_utils import eta


def test_estimate_grows_with_the_table_and_shrinks_with_parallel_workers():
    small = eta.estimate_seconds(10 * 1024 * 1024)
    big = eta.estimate_seconds(1000 * 1024 * 1024)
    assert eta.FIXED_SECONDS < small < big
    assert big == round(eta.FIXED_SECONDS + 1000 * 1024 * 1024 / float(eta.DEFAULT_BYTES_PER_SECOND), 1)
    assert eta.estimate_seconds(1000 * 1024 * 1024, workers=2) < big
    assert eta.estimate_seconds(0) == eta.FIXED_SECONDS and eta.estimate_seconds(None) == eta.FIXED_SECONDS


def test_phase_shares_cover_a_whole_build_in_order():
    assert abs(sum(share for phase, share in eta.PHASE_SHARES) - 1.0) < 1e-9
    assert eta.share_after('initializing') == 1.0
    assert abs(eta.share_after('building index: scanning table') - 0.65) < 1e-9
    assert eta.share_after('index validation: scanning table') == 0.0
    assert eta.share_after('waiting for old snapshots') == 0.0


def test_remaining_time_follows_the_observed_rate_and_the_later_phases():
    # 1000 blocks, 250 more in the last 5 s: 50 blocks/s, 500 blocks left = 10 s of this phase;
    # the whole phase takes 20 s = 35 % of the build, so the later 65 % take 20 / 0.35 * 0.65
    left = eta.remaining_seconds('building index: scanning table', 500, 1000, 250, 5.0)
    assert left == round(10 + 20 / 0.35 * 0.65, 1)
    # the last phase: only its own rest
    assert eta.remaining_seconds('index validation: scanning table', 900, 1000, 800, 2.0) == 2.0


def test_without_a_rate_the_estimate_minus_the_elapsed_time_is_used():
    assert eta.remaining_seconds('building index: scanning table', 0, 1000, 0, 0.0, estimate_s=30, elapsed_s=12) == 18
    assert eta.remaining_seconds('initializing', 0, 0, 0, 0.0, estimate_s=30, elapsed_s=40) == 0.0
    assert eta.remaining_seconds('building index: sorting live tuples', 0, 0, 0, 3.0) is None
    # a wait: no work is left after it, its end depends on the blockers
    assert eta.remaining_seconds('waiting for old snapshots', 0, 0, 0, 3.0, estimate_s=30, elapsed_s=5) == 0.0


def test_tracker_measures_the_rate_from_the_first_sight_of_each_phase():
    tracker = eta.EtaTracker()
    row = dict(phase='building index: scanning table', blocks_done=100, blocks_total=1100, tuples_total=0,
               elapsed_s=1.0)
    assert tracker.update(7, row, now=10.0, estimate_s=40) == 39.0      # no rate yet: the estimate
    row.update(blocks_done=600, elapsed_s=6.0)
    # 500 blocks in 5 s: 100/s, 500 left = 5 s; phase 11 s = 35 % of the build
    assert tracker.update(7, row, now=15.0) == round(5 + 11 / 0.35 * 0.65, 1)
    # a new phase starts its own measurement
    row.update(phase='building index: loading tuples in tree', blocks_total=0, tuples_done=10, tuples_total=100)
    assert tracker.update(7, row, now=16.0, estimate_s=40) == 34.0


def test_overall_eta_adds_the_queued_builds_spread_over_the_lanes():
    assert eta.overall_remaining([10.0, 4.0], [6.0, 6.0], lanes=2) == 16.0
    assert eta.overall_remaining([], [6.0, 6.0, 6.0], lanes=3) == 6.0
    assert eta.overall_remaining([None], [6.0], lanes=1) is None


def test_human_durations():
    assert [eta.human_seconds(s) for s in (None, 4.4, 65, 3725)] == ['?', '4 s', '1 min 05 s', '1 h 02 min']

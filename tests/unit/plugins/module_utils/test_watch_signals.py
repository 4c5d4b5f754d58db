"""The watch's pure parts: the signals between two readings and the guard's judgement."""
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / '.collections'))

from ansible_collections.chefcloud.pgindex.plugins.module_utils import watch  # noqa: E402
from ansible_collections.chefcloud.pgindex.plugins.module_utils.errors import SpecError  # noqa: E402

LIMITS = watch.thresholds()


def reading(at, upd=0, hot=0, commit=0, rollback=0, deadlocks=0, conflicts=0, wal=0, connections=10, table_bytes=8192,
            idx_scan=0, index_bytes=8192, waits=(), blockers=(), own=None):
    return dict(at=at, xact_commit=commit, xact_rollback=rollback, deadlocks=deadlocks, conflicts=conflicts,
                connections=connections, wal_bytes=wal, own_cum=own or dict(commits=0, rollbacks=0),
                tables={'public.t': dict(n_tup_upd=upd, n_tup_hot_upd=hot, n_tup_ins=0, n_tup_del=0, n_live_tup=1000,
                                         table_bytes=table_bytes, indexes_bytes=16384)},
                indexes={'public.idx': dict(exists=True, valid=True, idx_scan=idx_scan, size_bytes=index_bytes)},
                lock_waits=list(waits), blockers=list(blockers), statements={}, latency={})


def snapshot(*readings):
    return watch.before_signals(dict(readings=list(readings)))


def signals(tripped):
    return sorted(t['signal'] for t in tripped)


def test_window_rates_and_ratios():
    win = watch.window(reading(0, upd=100, hot=90, commit=1000, rollback=10, wal=10000),
                       reading(10, upd=300, hot=100, commit=1200, rollback=30, wal=30000, idx_scan=7))
    table = win['tables']['public.t']
    assert table['updates'] == 200 and table['hot_updates'] == 10 and table['hot_ratio_pct'] == 5.0
    assert table['updates_per_s'] == 20.0
    assert win['rollbacks'] == 20 and win['rollbacks_per_s'] == 2.0 and win['transactions'] == 220
    assert win['wal_bytes_per_xact'] == round(20000 / 220.0, 1)
    assert win['indexes']['public.idx']['idx_scans'] == 7


def test_the_watchs_own_transactions_are_not_the_applications():
    win = watch.window(reading(0, commit=100, rollback=0),
                       reading(10, commit=150, rollback=40, own=dict(commits=50, rollbacks=40)))
    assert win['rollbacks'] == 0 and win['transactions'] == 0 and win['rollbacks_per_s'] == 0.0


def test_hot_ratio_drop_trips_with_the_numbers():
    before = snapshot(reading(0, upd=0, hot=0), reading(10, upd=1000, hot=950))
    win = watch.window(reading(0, upd=0, hot=0), reading(10, upd=500, hot=10))
    (trip,) = watch.judge(before, win, LIMITS)
    assert trip['signal'] == 'hot_ratio' and trip['table'] == 'public.t'
    assert trip['before'] == 95.0 and trip['value'] == 2.0 and trip['updates'] == 500
    assert 'fell from 95.0 % (the 10 s before the build) to 2.0 % over 500 updates' in trip['message']


def test_hot_ratio_needs_enough_updates_and_falls_back_to_the_cumulative_ratio():
    before = snapshot(reading(0, upd=5000, hot=4900), reading(10, upd=5010, hot=4910))   # 10 updates in the window
    quiet = watch.window(reading(0), reading(10, upd=50, hot=0))                       # 50 < min_updates
    assert watch.judge(before, quiet, LIMITS) == []
    busy = watch.window(reading(0), reading(10, upd=200, hot=0))
    (trip,) = watch.judge(before, busy, LIMITS)
    assert 'since the statistics were reset' in trip['message'] and trip['before'] == 98.0


def test_a_small_drop_passes():
    before = snapshot(reading(0), reading(10, upd=1000, hot=900))
    win = watch.window(reading(0), reading(10, upd=1000, hot=750))
    assert watch.judge(before, win, LIMITS) == []
    assert watch.judge(before, win, watch.thresholds(dict(max_hot_ratio_drop=10))) != []


def test_health_signals():
    before = snapshot(reading(0, commit=0, rollback=0), reading(10, commit=1000, rollback=10))   # 1 rollback/s
    win = watch.window(reading(0), reading(10, commit=1000, rollback=40, deadlocks=2, connections=30))
    assert signals(watch.judge(before, win, LIMITS)) == ['connections', 'deadlocks', 'rollbacks']
    health = watch.health(before, win, watch.judge(before, win, LIMITS))
    assert health['error_rate_changed'] is True and health['rollbacks_per_s'] == 4.0


def test_wal_per_transaction_increase():
    before = snapshot(reading(0), reading(10, commit=1000, wal=1000 * 500))       # 500 B/xact
    win = watch.window(reading(0), reading(10, commit=1000, wal=1000 * 1500))     # 1500 B/xact: +200 %
    (trip,) = watch.judge(before, win, LIMITS)
    assert trip['signal'] == 'wal_per_xact' and 'from 500 to 1500 bytes' in trip['message']


def test_growth_under_a_mebibyte_never_trips():
    before = snapshot(reading(0), reading(10))
    small = watch.window(reading(0, table_bytes=8192), reading(10, table_bytes=8192 * 10))
    assert watch.judge(before, small, LIMITS) == []
    big = watch.window(reading(0, table_bytes=10 << 20, index_bytes=4 << 20),
                       reading(10, table_bytes=20 << 20, index_bytes=8 << 20))
    assert signals(watch.judge(before, big, LIMITS, new_indexes=['public.idx'])) == ['index_growth', 'table_growth']
    assert signals(watch.judge(before, big, LIMITS)) == ['table_growth']   # idx is not new: its growth is not judged


def test_lock_pile_up_names_the_blocker():
    blocker = dict(pid=42, user='app', application_name='report', state='idle in transaction', xact_age_s=12.0,
                   query='LOCK TABLE t IN SHARE MODE', locks='ShareLock', blocking=6)
    waits = [dict(pid=100 + i, blocked_by=[42]) for i in range(6)]
    before = snapshot(reading(0))
    win = watch.window(reading(0), reading(1, waits=waits, blockers=[blocker]))
    (trip,) = watch.judge(before, win, LIMITS)
    assert trip['signal'] == 'lock_waits' and trip['blockers'][0]['pid'] == 42
    assert "6 sessions wait on locks (limit 5); blocked by pid 42 (user app, application 'report', idle in transaction" \
        in trip['message']


def test_no_snapshot_window_means_no_rates_before():
    before = snapshot(reading(10, upd=100, hot=100))
    assert before['rollbacks_per_s'] is None and before['cumulative_hot_ratio_pct'] == {'public.t': 100.0}


def test_thresholds_are_checked():
    assert watch.thresholds(dict(max_lock_waiters='3'))['max_lock_waiters'] == 3.0
    with pytest.raises(SpecError, match='unknown watch threshold'):
        watch.thresholds(dict(max_hot=1))
    with pytest.raises(SpecError, match='must be a number >= 0'):
        watch.thresholds(dict(max_deadlocks=-1))


def test_chain_carries_the_own_transactions():
    first = dict(own_cum=dict(commits=0, rollbacks=0), own_after=dict(commits=5, rollbacks=2))
    second = watch.chain(first, dict(own_at_read=dict(commits=3, rollbacks=1)))
    assert second['own_cum'] == dict(commits=8, rollbacks=3)


def test_the_watchs_own_executions_are_not_the_applications_scans():
    first = dict(reading(0, idx_scan=0), latency={'idx': dict(p95_ms=0.1, samples=5)})
    win = watch.window(first, reading(10, idx_scan=12), watch.own_scans([first]))
    assert win['indexes']['public.idx']['idx_scans'] == 12 and win['indexes']['public.idx']['app_scans'] == 7


def test_progress_line():
    values = watch.sample_values(watch.window(reading(0), reading(5, upd=100, hot=0)), ['public.t'], ['public.idx'])
    line = watch.progress_line(2, 5.0, 60, values, [])
    assert line.startswith('watch sample 2 at 5 s of 60 s: HOT % t 0.0, upd/s 20.0, idx_scan new 0')
    quiet = watch.sample_values(watch.window(reading(0), reading(5)), ['public.t'], [])
    assert 'HOT' not in watch.progress_line(1, 0, 60, quiet, [])

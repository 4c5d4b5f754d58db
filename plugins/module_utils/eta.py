# -*- coding: utf-8 -*-
# Copyright: ChefCloud Platform Engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How long an index build will take: before it starts (from the table's size) and while it runs
(from how far it got in the time it has run).

A CREATE INDEX CONCURRENTLY goes through the phases of pg_stat_progress_create_index in order. Each
phase has its usual share of a whole build (PHASE_SHARES, measured on the btree builds of the
runbook's tables: bench/, 1M rows per table, 64MB maintenance_work_mem). While a build runs, the part
of the build done is the shares of the phases before the current one plus the current phase's share
times its counter (blocks or tuples); the build's own pace so far (its elapsed time over that part)
sizes the rest. The sorts have no counter: there, the time the build took to reach the phase sizes the
whole build (the job's monitor records when each phase began, ``phase_started_s``). Waits (for writers,
old snapshots, readers) have no share: their end depends on other sessions, so the ETA of a waiting
build is the rest of the work only, and the progress line names who it waits for.

Pure functions only: the controller (the pg_index_set action plugin) calls them every poll.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# Bytes of table a single build process turns into an index per second, all phases together (bench/:
# 1M rows per table, ~85 MB each, a concurrent build without parallel workers in ~3 s on 2 shared cores).
DEFAULT_BYTES_PER_SECOND = 30 * 1024 * 1024
# Part of a build that parallel maintenance workers share: the table scan and the sort (bench/: one worker
# makes the six runbook builds about 1.5x faster).
PARALLEL_PART = 0.7
# Fixed cost of one build: catalog probes, the waits for writers, the final transaction.
FIXED_SECONDS = 0.5

# Share of a whole concurrent btree build spent in each phase with work, in phase order, for the two kinds
# of build (bench/: the phase seen at each reading of the runbook's builds). When the index's tuples fit in
# maintenance_work_mem the sort happens after the scan, in "sorting live tuples" (1M rows per table); when
# they do not, the runs are sorted and written during the scan and only merged after it (5M rows).
PHASE_SHARES = (
    ('building index: scanning table', 0.20),
    ('building index: sorting live tuples', 0.52),
    ('building index: loading tuples in tree', 0.13),
    ('index validation: scanning index', 0.04),
    ('index validation: sorting tuples', 0.04),
    ('index validation: scanning table', 0.07),
)
SPILLING_SHARES = (
    ('building index: scanning table', 0.62),
    ('building index: sorting live tuples', 0.10),
    ('building index: loading tuples in tree', 0.13),
    ('index validation: scanning index', 0.05),
    ('index validation: sorting tuples', 0.04),
    ('index validation: scanning table', 0.06),
)
# The sort spills when the index's tuples, about this part of the table's bytes, exceed maintenance_work_mem
# (parallel workers split both the tuples and the memory, so their number does not change the answer).
SORT_BYTES_PER_TABLE_BYTE = 0.5


def sort_spills(table_bytes, maintenance_work_mem_bytes):
    """Whether the build's sort will not fit in memory (then SPILLING_SHARES describe it)."""
    if not table_bytes or not maintenance_work_mem_bytes:
        return False
    return table_bytes * SORT_BYTES_PER_TABLE_BYTE > maintenance_work_mem_bytes


_ORDER = [name for name, share in PHASE_SHARES]
_SHARE = dict(PHASE_SHARES)
_SPILLING = dict(SPILLING_SHARES)
# The phases whose pg_stat_progress_create_index counter measures their own work (a sort leaves the
# counter of the scan before it at 100 %).
COUNTED = ('building index: scanning table', 'building index: loading tuples in tree',
           'index validation: scanning index', 'index validation: scanning table')
# Below this part of the build done, the pace is not yet known well enough to extrapolate.
MIN_FRACTION = 0.03


def estimate_seconds(table_bytes, bytes_per_second=DEFAULT_BYTES_PER_SECOND, workers=0):
    """Estimated duration of one build on a table of ``table_bytes``, before it starts.

    Parallel maintenance workers speed up the first scan and sort only (PARALLEL_PART of the build).
    """
    if not table_bytes or table_bytes < 0:
        return FIXED_SECONDS
    parallel_part = PARALLEL_PART
    speedup = 1.0 / ((1 - parallel_part) + parallel_part / (1 + max(0, int(workers or 0))))
    return round(FIXED_SECONDS + float(table_bytes) / bytes_per_second / speedup, 1)


def _shares(spills):
    return _SPILLING if spills else _SHARE


def share_after(phase, spills=False):
    """Share of the whole build in the phases after ``phase`` (all of them before the first one)."""
    shares = _shares(spills)
    if phase in shares:
        return sum(shares[name] for name in _ORDER[_ORDER.index(phase) + 1:])
    if phase in ('initializing', 'waiting for writers before build'):
        return 1.0
    if phase == 'waiting for writers before validation':
        return sum(shares[name] for name in _ORDER[3:])
    return 0.0


def share_before(phase, spills=False):
    """Share of the whole build in the phases before ``phase`` (0 for the first; None for a wait or an unknown
    phase)."""
    shares = _shares(spills)
    if phase in shares:
        return sum(shares[name] for name in _ORDER[:_ORDER.index(phase)])
    return None


def remaining_seconds(phase, done, total, done_at_first_sight, seconds_since_first_sight, estimate_s=None,
                      elapsed_s=0.0, phase_started_s=None, spills=False, stalled=False):
    """Seconds left for one running build, or None when nothing allows a guess.

    ``done``/``total``: the counter of the current phase now; ``elapsed_s``: how long the build has run;
    ``phase_started_s``: how far into the build the current phase began (the job's monitor records it);
    ``spills``: the sort does not fit in memory (sort_spills), so the shares are SPILLING_SHARES;
    ``stalled``: the counter has not moved for a second (a parallel leader's scan counter stops while its
    workers go on), so it no longer tells the pace.

    1. A counted phase: the part done is ``share_before + share * done / total``; the build's pace so far
       gives the rest: ``elapsed * (1 - part) / part``.
    2. A sort (no counter) with a known start: the whole build is the time to reach the phase over the
       shares before it; the rest is that minus the elapsed time, and never less than the phases after it.
    3. Else the rate of the counter since the phase was first seen (``done_at_first_sight``,
       ``seconds_since_first_sight`` ago), then the estimate made before the build minus the time it ran.
    """
    share = _shares(spills).get(phase)
    before = share_before(phase, spills)
    elapsed_s = float(elapsed_s or 0.0)
    if share and elapsed_s > 0:
        if phase in COUNTED and total and done is not None and done <= total and not stalled:
            part = before + share * float(done) / total
            if part >= MIN_FRACTION:
                return round(elapsed_s * (1 - part) / part, 1)
        elif phase not in COUNTED and phase_started_s and before:
            whole = float(phase_started_s) / before
            return round(max(whole - elapsed_s, whole * share_after(phase, spills)), 1)
    progressed = (done or 0) - (done_at_first_sight or 0)
    if share and phase in COUNTED and total and progressed > 0 and seconds_since_first_sight > 0:
        rate = progressed / float(seconds_since_first_sight)
        phase_left = max(0, total - done) / rate
        build_whole = total / rate / share
        return round(phase_left + build_whole * share_after(phase, spills), 1)
    if estimate_s is None:
        return None
    if phase in _SHARE or phase in ('initializing', 'waiting for writers before build',
                                    'waiting for writers before validation'):
        return round(max(0.0, estimate_s - elapsed_s), 1)
    return 0.0


class EtaTracker(object):
    """Remembers, per build, when its current phase was first seen and its counter then, and when its counter
    last moved."""

    STALL_SECONDS = 1.0

    def __init__(self):
        self._first = {}
        self._moved = {}

    def update(self, key, row, now, estimate_s=None):
        """The remaining seconds of the build ``row`` (a pg_index_progress build), observed at ``now``."""
        done, total = counter(row)
        seen = self._first.get(key)
        if seen is None or seen[0] != row.get('phase'):
            seen = (row.get('phase'), now, done)
            self._first[key] = seen
        moved = self._moved.get(key)
        if moved is None or moved[0] != row.get('phase') or moved[1] != done:
            moved = (row.get('phase'), done, now)
            self._moved[key] = moved
        stalled = now - moved[2] >= self.STALL_SECONDS and bool(total) and done < total
        return remaining_seconds(row.get('phase'), done, total, seen[2], now - seen[1], estimate_s,
                                 row.get('elapsed_s') or 0.0, row.get('phase_started_s'), bool(row.get('sort_spills')),
                                 stalled)


def counter(row):
    """(done, total) of the counter the phase advances: blocks, else tuples; (0, 0) when none."""
    for done, total in (('blocks_done', 'blocks_total'), ('tuples_done', 'tuples_total')):
        if row.get(total):
            return row.get(done) or 0, row[total]
    return 0, 0


def overall_remaining(running, waiting_estimates, lanes):
    """ETA of the whole change set: the longest running build, plus the builds not started yet
    spread over the lanes. ``running`` are remaining seconds (None: unknown, ignored)."""
    known = [r for r in running if r is not None]
    if not known and running:
        return None
    queued = sum(e for e in waiting_estimates if e) / float(max(1, lanes or 1))
    return round((max(known) if known else 0.0) + queued, 1)


def human_seconds(seconds):
    """12 s, 3 min 05 s, 1 h 02 min."""
    if seconds is None:
        return '?'
    seconds = int(round(seconds))
    if seconds < 60:
        return '%d s' % seconds
    if seconds < 3600:
        return '%d min %02d s' % (seconds // 60, seconds % 60)
    return '%d h %02d min' % (seconds // 3600, (seconds % 3600) // 60)

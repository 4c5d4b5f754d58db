# -*- coding: utf-8 -*-
# Copyright: ChefCloud Platform Engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How long an index build will take: before it starts (from the table's size) and while it runs
(from the observed rate of its current phase).

A CREATE INDEX CONCURRENTLY goes through the phases of pg_stat_progress_create_index in order. Each
phase with a counter (blocks or tuples) advances at a rate we can observe; the phases after the
current one are sized by their usual share of a whole build (PHASE_SHARES, measured on btree builds
of the runbook's tables), scaled by how fast this build really runs. Waits (for writers, old
snapshots, readers) have no share: their end depends on other sessions, so the ETA of a waiting
build is the rest of the work only, and the progress line names who it waits for.

Pure functions only: the controller (the pg_index_set action plugin) calls them every poll.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# Bytes of table a single build process turns into an index per second, all phases together (a
# conservative figure from bench/: 1M rows of payments, ~90 MB, build in ~2.5 s on 2 shared cores).
DEFAULT_BYTES_PER_SECOND = 40 * 1024 * 1024
# Fixed cost of one build: catalog probes, the waits for writers, the final transaction.
FIXED_SECONDS = 0.5

# Share of a whole concurrent btree build spent in each phase with work, in phase order.
PHASE_SHARES = (
    ('building index: scanning table', 0.35),
    ('building index: sorting live tuples', 0.15),
    ('building index: loading tuples in tree', 0.15),
    ('index validation: scanning index', 0.05),
    ('index validation: sorting tuples', 0.10),
    ('index validation: scanning table', 0.20),
)
_ORDER = [name for name, share in PHASE_SHARES]
_SHARE = dict(PHASE_SHARES)


def estimate_seconds(table_bytes, bytes_per_second=DEFAULT_BYTES_PER_SECOND, workers=0):
    """Estimated duration of one build on a table of ``table_bytes``, before it starts.

    Parallel maintenance workers speed up the first scan and sort only (about half the build).
    """
    if not table_bytes or table_bytes < 0:
        return FIXED_SECONDS
    parallel_part = 0.5
    speedup = 1.0 / ((1 - parallel_part) + parallel_part / (1 + max(0, int(workers or 0))))
    return round(FIXED_SECONDS + float(table_bytes) / bytes_per_second / speedup, 1)


def share_after(phase):
    """Share of the whole build in the phases after ``phase`` (all of them before the first one)."""
    if phase in _SHARE:
        return sum(_SHARE[name] for name in _ORDER[_ORDER.index(phase) + 1:])
    if phase in ('initializing', 'waiting for writers before build'):
        return 1.0
    if phase == 'waiting for writers before validation':
        return sum(_SHARE[name] for name in _ORDER[3:])
    return 0.0


def remaining_seconds(phase, done, total, done_at_first_sight, seconds_since_first_sight, estimate_s=None,
                      elapsed_s=0.0):
    """Seconds left for one running build, or None when nothing allows a guess.

    ``done``/``total`` are the counter of the current phase now, ``done_at_first_sight`` its value when
    this phase was first seen ``seconds_since_first_sight`` ago. With a rate: the rest of this phase at
    that rate, plus the later phases sized by the build's own speed. Without one: the estimate made
    before the build minus the time it already ran (never below 0).
    """
    share = _SHARE.get(phase)
    progressed = (done or 0) - (done_at_first_sight or 0)
    if share and total and progressed > 0 and seconds_since_first_sight > 0:
        rate = progressed / float(seconds_since_first_sight)
        phase_left = max(0, total - done) / rate
        phase_whole = total / rate
        build_whole = phase_whole / share
        return round(phase_left + build_whole * share_after(phase), 1)
    if estimate_s is None:
        return None
    if phase in _SHARE or phase in ('initializing', 'waiting for writers before build',
                                    'waiting for writers before validation'):
        return round(max(0.0, estimate_s - (elapsed_s or 0.0)), 1)
    return 0.0


class EtaTracker(object):
    """Remembers, per build, when its current phase was first seen and its counter then."""

    def __init__(self):
        self._first = {}

    def update(self, key, row, now, estimate_s=None):
        """The remaining seconds of the build ``row`` (a pg_index_progress build), observed at ``now``."""
        done, total = counter(row)
        seen = self._first.get(key)
        if seen is None or seen[0] != row.get('phase'):
            seen = (row.get('phase'), now, done)
            self._first[key] = seen
        return remaining_seconds(row.get('phase'), done, total, seen[2], now - seen[1], estimate_s,
                                 row.get('elapsed_s') or 0.0)


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

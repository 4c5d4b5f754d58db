# -*- coding: utf-8 -*-
# Copyright: ChefCloud Platform Engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which indexes build at the same time, and running them so.

Indexes on one table build one after another (a lane: two concurrent builds on a table wait for
each other); lanes of different tables run at the same time, at most ``parallelism`` at once, each
starting its next index as soon as the previous one ends (no barrier between waves). Since
PostgreSQL 14 a concurrent build of a plain index no longer waits for the other concurrent builds,
so parallel lanes really overlap.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import threading

PARALLEL_CIC_SINCE = 140000


def default_parallelism(server_version_num):
    """2 concurrent builds on PostgreSQL 14+, 1 before (where concurrent builds wait for each other)."""
    return 2 if server_version_num >= PARALLEL_CIC_SINCE else 1


def lanes(indexes, default_schema='public'):
    """The change set's indexes grouped by table, in change-set order: a list of lists."""
    by_table, order = {}, []
    for index in indexes:
        key = (index.get('schema') or default_schema, index.get('table'))
        if key not in by_table:
            by_table[key] = []
            order.append(key)
        by_table[key].append(index)
    return [by_table[key] for key in order]


def run_lanes(all_lanes, parallelism, work, stop_on_failure=True, on_exception=None):
    """Run ``work(index)`` over every lane, ``parallelism`` lanes at a time, in worker threads.

    ``work`` returns a result dict with ``failed``. An exception ``work`` raises is never lost: it
    becomes ``on_exception(index, exc)`` (default: a minimal failed result naming the exception) and
    counts as a failure. With ``stop_on_failure`` no index starts after a failure (running ones
    finish); those left get ``None``. Returns the results in lane order.
    """
    results = [[None] * len(lane) for lane in all_lanes]
    pending = list(range(len(all_lanes)))
    lock = threading.Lock()
    stop = threading.Event()
    if on_exception is None:
        on_exception = exception_result

    def run_one(index):
        try:
            return work(index)
        except BaseException as exc:  # noqa: B902 - a lane never dies silently, whatever ``work`` raises
            try:
                return on_exception(index, exc)
            except Exception as again:
                return exception_result(index, again)

    def worker():
        while True:
            with lock:
                if not pending or stop.is_set():
                    return
                lane_number = pending.pop(0)
            for position, index in enumerate(all_lanes[lane_number]):
                if stop.is_set():
                    return
                result = run_one(index)
                results[lane_number][position] = result
                if result.get('failed') and stop_on_failure:
                    stop.set()

    threads = [threading.Thread(target=worker, name='pgindex-lane-%d' % n)
               for n in range(max(1, min(int(parallelism), len(all_lanes))))]
    for thread in threads:
        thread.daemon = True
        thread.start()
    for thread in threads:
        thread.join()
    return results


def exception_result(index, exc):
    """A failed result for an exception nothing else turned into one."""
    text = '%s: %s' % (exc.__class__.__name__, ' '.join(str(exc).split()))
    name = index.get('name') if isinstance(index, dict) else index
    return dict(name=name, failed=True, changed=False, msg=text, error=text)

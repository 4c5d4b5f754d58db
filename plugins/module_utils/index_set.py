# -*- coding: utf-8 -*-
# Copyright: ChefCloud Platform Engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A whole change set: each index through ensure_index, lanes of tables in parallel (schedule.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import itertools
import time

from ansible_collections.chefcloud.pgindex.plugins.module_utils import results, schedule
from ansible_collections.chefcloud.pgindex.plugins.module_utils.ensure import ensure_index
from ansible_collections.chefcloud.pgindex.plugins.module_utils.changeset import (
    read_changeset, split_params)
from ansible_collections.chefcloud.pgindex.plugins.module_utils.errors import PgIndexError
from ansible_collections.chefcloud.pgindex.plugins.module_utils.index_spec import IndexSpec
from ansible_collections.chefcloud.pgindex.plugins.module_utils.session import Session, one_line_error

NOT_STARTED = results.NOT_STARTED


def ensure_index_set(connect, items, defaults, parallelism, stop_on_failure=True, check_mode=False, control=None):
    """Bring every index of ``items`` to its state; return (results in change-set order, seconds).

    Every result has the shape of results.RESULT_KEYS, failed ones too: any exception while an index
    is worked on (a PgIndexError, a psycopg2 error, a RuntimeError...) is that index's failed result;
    with ``stop_on_failure`` no index starts after a failure and those left get the action
    ``not started``. ``outcome(results)`` gives the set's top-level failed/msg/leftovers.
    ``control`` (jobcontrol.JobControl of a background job): no index starts once it is cancelled,
    and it hears of every result.
    """
    entries = read_changeset(items, defaults)
    params = [dict(entry.params) for entry in entries]
    keys = [(p['schema'], p['name']) for p in params]

    order = itertools.count(1)

    def work(p):
        if control is not None and control.cancelled():
            return dict(results.not_started(p['name'], p['schema'], p.get('table'), control.cancelled()), failed=True)
        result = _work(p)
        if control is not None:
            control.index_done(result)
        return result

    def _work(p):
        try:
            settings, options = split_params(p)
            result = ensure_index(connect, IndexSpec.from_params(p), p['state'], settings,
                                  check_mode=check_mode, options=options)
            result['failed'] = False
            return results.complete(result)
        except Exception as exc:  # any exception is this index's failed result, never a lost lane
            return failed_result(p, exc, next(order))

    if parallelism <= 0:
        with Session(connect=connect) as session:
            parallelism = schedule.default_parallelism(session.version)
    start = time.monotonic()
    by_lane = schedule.run_lanes(schedule.lanes(params), parallelism, work, stop_on_failure,
                                 on_exception=lambda p, exc: failed_result(p, exc, next(order)))
    duration = round(time.monotonic() - start, 3)
    done = {}
    for lane, lane_results in zip(schedule.lanes(params), by_lane):
        for p, result in zip(lane, lane_results):
            done[(p['schema'], p['name'])] = result if result is not None else results.not_started(
                p['name'], p['schema'], p.get('table'), 'an earlier build failed (on_error=stop)')
    return [done[key] for key in keys], duration, parallelism


def failed_result(p, exc, order=0):
    """The complete failed result of index ``p`` for any exception (a PgIndexError's details kept)."""
    details = dict(exc.details) if isinstance(exc, PgIndexError) else {}
    details.pop('msg', None)
    msg = exc.msg if isinstance(exc, PgIndexError) else '%s.%s: %s' % (p['schema'], p['name'], one_line_error(exc))
    result = results.complete(dict(details, name=p['name'], schema=p['schema'], table=p.get('table') or details.get('table'),
                                   failed=True, msg=msg))
    result['error'] = result['error'] or one_line_error(getattr(exc, 'cause', None) or exc)
    result['_order'] = order
    return result


def outcome(index_results, check_mode=False):
    """pg_index_set's top-level ``failed``, ``msg`` (the first real cause) and ``leftovers``; the
    results lose their private ordering key."""
    summary = results.set_outcome(index_results, check_mode=check_mode)
    for result in index_results:
        result.pop('_order', None)
    return summary

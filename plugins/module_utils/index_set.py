# -*- coding: utf-8 -*-
# Copyright: ChefCloud Platform Engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A whole change set: each index through ensure_index, lanes of tables in parallel (schedule.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.chefcloud.pgindex.plugins.module_utils import schedule
from ansible_collections.chefcloud.pgindex.plugins.module_utils.ensure import ensure_index
from ansible_collections.chefcloud.pgindex.plugins.module_utils.changeset import (
    read_changeset, read_defaults, read_entry, split_params)
from ansible_collections.chefcloud.pgindex.plugins.module_utils.errors import PgIndexError
from ansible_collections.chefcloud.pgindex.plugins.module_utils.index_spec import IndexSpec

NOT_STARTED = 'not started'


def index_params(item, defaults):
    """One change set entry validated as pg_concurrent_index's options, ``defaults`` filling gaps
    (changeset.read_entry: unknown keys and wrong types are errors)."""
    return dict(read_entry(item, read_defaults(defaults)).params)


def ensure_index_set(connect, items, defaults, parallelism, stop_on_failure=True, check_mode=False):
    """Bring every index of ``items`` to its state; return (results in change-set order, seconds).

    A failed index gives a result with ``failed``, ``msg`` and the failure details; with
    ``stop_on_failure`` no index starts after a failure and those left get the action ``not started``.
    """
    entries = read_changeset(items, defaults)
    params = [dict(entry.params) for entry in entries]
    keys = [(p['schema'], p['name']) for p in params]

    def work(p):
        try:
            settings, options = split_params(p)
            result = ensure_index(connect, IndexSpec.from_params(p), p['state'], settings,
                                  check_mode=check_mode, options=options)
            result['failed'] = False
        except PgIndexError as exc:
            result = dict(exc.details, name=p['name'], schema=p['schema'], table=p.get('table'), failed=True,
                          msg=exc.msg, action=None)
            result.setdefault('changed', False)
        return result

    if parallelism <= 0:
        conn = connect()
        parallelism = schedule.default_parallelism(conn.server_version)
    start = time.monotonic()
    by_lane = schedule.run_lanes(schedule.lanes(params), parallelism, work, stop_on_failure)
    duration = round(time.monotonic() - start, 3)
    done = {}
    for lane, lane_results in zip(schedule.lanes(params), by_lane):
        for p, result in zip(lane, lane_results):
            done[(p['schema'], p['name'])] = result if result is not None else dict(
                name=p['name'], schema=p['schema'], table=p.get('table'), failed=False, changed=False,
                action=NOT_STARTED, msg='not started: an earlier build failed (on_error=stop)')
    return [done[key] for key in keys], duration, parallelism

# -*- coding: utf-8 -*-
# Copyright: ChefCloud Platform Engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A whole change set: each index through ensure_index, lanes of tables in parallel (schedule.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.chefcloud.pgindex.plugins.module_utils import schedule
from ansible_collections.chefcloud.pgindex.plugins.module_utils.ensure import ensure_index
from ansible_collections.chefcloud.pgindex.plugins.module_utils.errors import PgIndexError, SpecError
from ansible_collections.chefcloud.pgindex.plugins.module_utils.index_options import (
    INDEX_ARGUMENT_SPEC, INDEX_REQUIRED_IF, split_params)
from ansible_collections.chefcloud.pgindex.plugins.module_utils.index_spec import IndexSpec

NOT_STARTED = 'not started'


def index_params(item, defaults):
    """One change set entry validated as pg_concurrent_index's options, ``defaults`` filling gaps.

    Keys that are not options (such as ``verify``) are ignored.
    """
    if not isinstance(item, dict):
        raise SpecError('each item of indexes must be a dict, got %r' % (item,))
    given = dict((key, value) for key, value in defaults.items() if value is not None)
    given.update((key, value) for key, value in item.items()
                 if key in INDEX_ARGUMENT_SPEC and value is not None)
    result = ArgumentSpecValidator(INDEX_ARGUMENT_SPEC, required_if=INDEX_REQUIRED_IF).validate(given)
    if result.error_messages:
        raise SpecError('index %s: %s' % (item.get('name', '?'), '; '.join(result.error_messages)))
    return result.validated_parameters


def ensure_index_set(connect, items, defaults, parallelism, stop_on_failure=True, check_mode=False, control=None):
    """Bring every index of ``items`` to its state; return (results in change-set order, seconds).

    A failed index gives a result with ``failed``, ``msg`` and the failure details; with
    ``stop_on_failure`` no index starts after a failure and those left get the action ``not started``.
    ``control`` (jobcontrol.JobControl of a background job): no index starts once it is cancelled,
    and it hears of every result.
    """
    params = [index_params(item, defaults) for item in items]
    names = [p['name'] for p in params]
    if len(set(names)) != len(names):
        raise SpecError('indexes lists an index twice: %s' % ', '.join(sorted(n for n in set(names) if names.count(n) > 1)))

    def work(p):
        if control is not None and control.cancelled():
            return dict(name=p['name'], schema=p['schema'], table=p.get('table'), failed=True, changed=False,
                        action=NOT_STARTED, msg='not started: %s' % control.cancelled())
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
            done[p['name']] = result if result is not None else dict(
                name=p['name'], schema=p['schema'], table=p.get('table'), failed=False, changed=False,
                action=NOT_STARTED, msg='not started: an earlier build failed (on_error=stop)')
    return [done[name] for name in names], duration, parallelism

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ChefCloud Platform Engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: pg_index_set
short_description: Build or drop a change set of PostgreSQL indexes concurrently, tables in parallel
version_added: 0.1.0
description:
  - Runs M(chefcloud.pgindex.pg_concurrent_index) for every index of a change set in one task, with the same
    behaviour per index (definition-aware idempotency, INVALID leftovers rebuilt, cleanup, retries, drift
    policies, partitioned tables).
  - Indexes on one table build one after another; indexes on different tables build at the same time, at most
    O(parallelism) at once, each table starting its next index as soon as the previous one ends.
  - The role C(chefcloud.pgindex.pgindex) runs it in the background (async) and prints the builds' progress
    with M(chefcloud.pgindex.pg_index_progress) meanwhile.
author:
  - ChefCloud Platform Engineering (@chefcloud)
extends_documentation_fragment:
  - chefcloud.pgindex.postgres
options:
  indexes:
    description:
      - The change set, each item a dict of options of M(chefcloud.pgindex.pg_concurrent_index) (C(name), C(table),
        C(columns), C(schema), C(unique), C(method), C(include), C(where), C(tablespace), C(storage_params),
        C(state), C(on_drift), C(lock_timeout)...) and C(verify) (read by M(chefcloud.pgindex.pg_index_verify)).
      - Any other key is an error with a "did you mean" hint, and a value of the wrong type an error naming the index
        and the key, before anything connects. Two entries with the same schema and name, or names PostgreSQL folds
        to the same lower-case name, are an error.
    type: list
    elements: dict
    required: true
  defaults:
    description:
      - Options of M(chefcloud.pgindex.pg_concurrent_index) applied to every index that does not set them itself,
        for example C(lock_timeout), C(retries) or C(state) (V(absent) drops the change set).
    type: dict
    default: {}
  parallelism:
    description:
      - Most indexes building at the same time (always on different tables).
      - V(0) chooses from the server version - 2 on PostgreSQL 14 and newer (a concurrent build of a plain index no
        longer waits for the others), 1 before.
    type: int
    default: 0
  on_error:
    description:
      - After a failed index, V(stop) starts no further index (running ones finish), V(continue) builds the others.
      - Either way every failed build is cleaned up and the task fails at the end, listing every result.
    type: str
    choices: [stop, continue]
    default: stop
notes:
  - Supports C(check_mode) (plans every index, runs nothing) and C(diff).
"""

EXAMPLES = r"""
- name: Build the change set, three tables at a time
  chefcloud.pgindex.pg_index_set:
    indexes: "{{ pgindex_indexes }}"
    parallelism: 3
    defaults:
      lock_timeout: 10s
      maintenance_work_mem: 512MB

- name: Roll the change set back (in reverse order)
  chefcloud.pgindex.pg_index_set:
    indexes: "{{ pgindex_indexes | reverse | list }}"
    defaults:
      state: absent
"""

RETURN = r"""
indexes:
  description: One result per index, in change-set order, with the return values of M(chefcloud.pgindex.pg_concurrent_index).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Name of the index.
      type: str
    action:
      description: What was done, as in M(chefcloud.pgindex.pg_concurrent_index), or C(not started) after an earlier failure.
      type: str
    failed:
      description: Whether this index failed.
      type: bool
    msg:
      description: Why it failed, or why it was not started.
      type: str
    error:
      description: The failure as one line C(ExceptionClass - message), or null.
      type: str
    duration_s:
      description: Seconds the statements took (failed builds included).
      type: float
    queries:
      description: The SQL executed, in order (planned, in check mode), failed statements and cleanups included.
      type: list
      elements: str
    cleaned_up:
      description: INVALID indexes left by a failed attempt that were dropped.
      type: list
      elements: str
    leftovers:
      description: INVALID indexes left behind, each with the exact C(DROP INDEX CONCURRENTLY) to run.
      type: list
      elements: dict
    attempts:
      description: Statements attempted, retries included.
      type: int
    blockers:
      description: Sessions seen blocking the build.
      type: list
      elements: dict
  sample: [{name: idx_fr_overview_org_period, action: created, valid: true, failed: false, duration_s: 1.9}]
parallelism:
  description: The parallelism used.
  returned: always
  type: int
  sample: 2
leftovers:
  description:
    - Every INVALID index left behind (a server restart mid-build, a cleanup that failed itself), with the
      exact statement that drops it; the next run rebuilds them. Also named in RV(msg).
  returned: always
  type: list
  elements: dict
  sample: [{index: idx_payments_org_status_created, schema: public, observed: true,
            drop_sql: 'DROP INDEX CONCURRENTLY IF EXISTS "public"."idx_payments_org_status_created";'}]
msg:
  description: On failure the first real cause (the first index that failed and why), then every leftover.
  returned: always
  type: str
duration_s:
  description: Seconds from the start of the first index to the end of the last.
  returned: always
  type: float
  sample: 7.42
"""

from ansible_collections.chefcloud.pgindex.plugins.module_utils.errors import PgIndexError
from ansible_collections.chefcloud.pgindex.plugins.module_utils.index_set import ensure_index_set, outcome
from ansible_collections.chefcloud.pgindex.plugins.module_utils.module import PgIndexModule

ARGUMENT_SPEC = dict(
    indexes=dict(type='list', elements='dict', required=True),
    defaults=dict(type='dict', default={}),
    parallelism=dict(type='int', default=0),
    on_error=dict(type='str', default='stop', choices=['stop', 'continue']),
)


def run(module):
    params = module.params
    results, duration, parallelism = ensure_index_set(
        module.connect, params['indexes'], params['defaults'], params['parallelism'],
        stop_on_failure=params['on_error'] == 'stop', check_mode=module.check_mode)
    for result in results:
        for warning in result.pop('warnings', []):
            module.ansible.warn(warning)
    set_outcome = outcome(results, check_mode=module.check_mode)
    summary = dict(changed=any(r.get('changed') for r in results), indexes=results, parallelism=parallelism,
                   duration_s=duration, diff=[r.pop('diff') for r in results if 'diff' in r],
                   leftovers=set_outcome['leftovers'])
    if set_outcome['failed']:
        raise PgIndexError(set_outcome['msg'], **summary)
    summary['msg'] = set_outcome['msg']
    return summary


def main():
    PgIndexModule('pg_index_set', ARGUMENT_SPEC).run(run)


if __name__ == '__main__':
    main()

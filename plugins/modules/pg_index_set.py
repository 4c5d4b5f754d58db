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
version_added: 1.0.0
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
  - chefcloud.pgindex.attributes
  - chefcloud.pgindex.attributes.changes
options:
  indexes:
    description:
      - The change set, each item a dict of options of M(chefcloud.pgindex.pg_concurrent_index) (C(name), C(table),
        C(columns), C(schema), C(unique), C(method), C(include), C(where), C(tablespace), C(storage_params),
        C(state), C(on_drift), C(lock_timeout)...). Other keys, such as C(verify), are ignored.
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
  sample: [{name: idx_fr_overview_org_period, action: created, valid: true, failed: false, duration_s: 1.9}]
parallelism:
  description: The parallelism used.
  returned: always
  type: int
  sample: 2
duration_s:
  description: Seconds from the start of the first index to the end of the last.
  returned: always
  type: float
  sample: 7.42
"""

from ansible_collections.chefcloud.pgindex.plugins.module_utils.errors import PgIndexError
from ansible_collections.chefcloud.pgindex.plugins.module_utils.index_set import ensure_index_set
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
    summary = dict(changed=any(r.get('changed') for r in results), indexes=results, parallelism=parallelism,
                   duration_s=duration, diff=[r.pop('diff') for r in results if 'diff' in r])
    failed = [r for r in results if r['failed']]
    if failed:
        raise PgIndexError('%d of %d index(es) failed: %s' % (len(failed), len(results), '; '.join(
            '%s: %s' % (r['name'], r['msg']) for r in failed)), **summary)
    return summary


def main():
    PgIndexModule('pg_index_set', ARGUMENT_SPEC).run(run)


if __name__ == '__main__':
    main()

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
  - An action plugin of the same name runs the module in the background on the task's host (its C(delegate_to)) and
    follows it from the controller in one loop, printing live progress (n of N done, each build's phase and percent,
    elapsed time, ETA, and who blocks a waiting build) until the job ends, then returns the module's result. In check
    mode the module runs in the foreground (it only plans) and each index's estimated duration is shown.
  - The job is never an orphan and never a ghost. A job whose process died without a result is detected within two
    polls and reported from the catalog (indexes done, not built, INVALID leftovers with the DROP to run). The job
    expects a heartbeat from the controller's polls; without one for O(heartbeat_timeout) seconds (the controller was
    killed or lost), it cancels its builds, drops their INVALID leftovers and ends, unless O(detach). Ctrl-C (SIGINT or
    SIGTERM of ansible-playbook) cancels the job's builds the same way, waits for it and prints what was cancelled.
  - Without O(parallelism), the number of lanes and each build's C(max_parallel_maintenance_workers) follow the database
    host's CPU count O(db_cpus) and O(cpu_share) (or the whole machine with O(off_peak)), within the server's
    C(max_parallel_workers) and C(max_worker_processes).
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
      - V(0) sizes it to the database host (O(db_cpus), O(cpu_share), O(off_peak)); when the CPU count is unknown,
        2 on PostgreSQL 14 and newer (a concurrent build of a plain index no longer waits for the others), 1 before.
        Before PostgreSQL 14 it is always 1 by default.
    type: int
    default: 0
  db_cpus:
    description:
      - CPUs of the database host (the role reads them with C(getconf _NPROCESSORS_ONLN) there; set it for managed
        databases). V(0) means unknown.
    type: int
    default: 0
  cpu_share:
    description:
      - Part of the database host's CPUs the builds may use (leader processes and parallel workers together), the rest
        is left to the application. The builds get C(round(db_cpus * cpu_share)) CPUs, at least 1; lanes come first
        (one per table, at most that many), then each build gets C(CPUs // lanes - 1) parallel maintenance workers.
    type: float
    default: 0.5
  off_peak:
    description:
      - Use every CPU of the database host (ignores O(cpu_share)), for a maintenance window.
    type: bool
    default: false
  progress_interval:
    description:
      - Seconds between two progress prints of the action plugin's loop (and at each index's end). The loop polls the
        background job every second with one shell command on the module host (no module run) that waits there, in
        steps of 0.1 s, for the job's result, so the end of the job is seen about 0.1 s after it.
    type: int
    default: 5
  build_timeout:
    description:
      - Longest time in seconds the background job may run (its async timeout).
    type: int
    default: 86400
  heartbeat_timeout:
    description:
      - The job cancels its builds when the controller's polls have not touched its heartbeat for this many seconds.
    type: int
    default: 60
  detach:
    description:
      - Let the job outlive its controller; no heartbeat is expected, and Ctrl-C stops following the job without
        cancelling it (the message gives its job id).
    type: bool
    default: false
  preflight:
    description:
      - The result of M(chefcloud.pgindex.pg_preflight) for the same change set. When it found every index present,
        valid and identical, nothing is started in the background (the module runs in the foreground, only to confirm).
    type: dict
  job:
    description:
      - Internal, set by the action plugin for the background job.
    type: dict
    suboptions:
      async_dir:
        description: The async directory (where the job's control files go).
        type: str
        required: true
      token:
        description: Names the job's control files.
        type: str
        required: true
      heartbeat_timeout:
        description: Seconds without a heartbeat after which the job cancels its builds (0 - never).
        type: int
        default: 60
  on_error:
    description:
      - After a failed index, V(stop) starts no further index (running ones finish), V(continue) builds the others.
      - Either way every failed build is cleaned up and the task fails at the end, listing every result.
    type: str
    choices: [stop, continue]
    default: stop
notes:
  - Supports C(check_mode) (plans every index, runs nothing, estimates each build) and C(diff).
  - The options O(progress_interval), O(build_timeout), O(heartbeat_timeout), O(detach) and O(preflight) belong to the
    action plugin (the controller's loop).
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
    estimate_s:
      description: The estimated build duration in seconds made before the build (from the table's size; 0 when
        nothing is built), to compare with C(duration_s).
      type: float
  sample: [{name: idx_fr_overview_org_period, action: created, valid: true, failed: false, duration_s: 1.9, estimate_s: 2.4}]
concurrency:
  description: How the lanes and parallel workers were sized - C(lanes), C(workers) (null - the server's setting),
    C(budget) (CPUs for the builds), C(cpus) and the C(rule) applied, in words.
  returned: always
  type: dict
cancelled:
  description: Why the job cancelled its builds (interrupted controller, lost heartbeat), or null.
  returned: always
  type: str
job:
  description: Added by the action plugin - C(jid), C(pid), C(polls), C(died) (the job process ended without a result)
    and C(interrupted).
  returned: when run in the background
  type: dict
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

from ansible_collections.chefcloud.pgindex.plugins.module_utils import concurrency, jobcontrol, progress, schedule
from ansible_collections.chefcloud.pgindex.plugins.module_utils.errors import PgIndexError, SpecError
from ansible_collections.chefcloud.pgindex.plugins.module_utils.index_set import ensure_index_set, outcome
from ansible_collections.chefcloud.pgindex.plugins.module_utils.module import PgIndexModule

ARGUMENT_SPEC = dict(
    indexes=dict(type='list', elements='dict', required=True),
    defaults=dict(type='dict', default={}),
    parallelism=dict(type='int', default=0),
    on_error=dict(type='str', default='stop', choices=['stop', 'continue']),
    db_cpus=dict(type='int', default=0),
    cpu_share=dict(type='float', default=concurrency.DEFAULT_CPU_SHARE),
    off_peak=dict(type='bool', default=False),
    # the action plugin's options (the controller's loop); accepted here, unused
    progress_interval=dict(type='int', default=5),
    build_timeout=dict(type='int', default=86400),
    heartbeat_timeout=dict(type='int', default=60),
    detach=dict(type='bool', default=False),
    preflight=dict(type='dict'),
    job=dict(type='dict', options=dict(
        async_dir=dict(type='str', required=True),
        token=dict(type='str', required=True, no_log=False),
        heartbeat_timeout=dict(type='int', default=60),
    )),
)

# Actions that build an index (the others take no time worth estimating).
BUILDING_ACTIONS = ('created', 'rebuilt', 'replaced', 'resumed')


def server_workers(conn):
    """(max_parallel_workers, max_worker_processes) of the server."""
    with conn.cursor() as cur:
        cur.execute("SELECT name, setting::int FROM pg_settings"
                    " WHERE name IN ('max_parallel_workers', 'max_worker_processes')")
        found = dict(cur.fetchall())
    return found.get('max_parallel_workers', 8), found.get('max_worker_processes', 8)


def size_concurrency(conn, params, defaults):
    """(parallelism, concurrency facts); sets the builds' max_parallel_maintenance_workers in ``defaults``."""
    items = [i for i in params['indexes'] if isinstance(i, dict)]
    tables = len(schedule.lanes(items, defaults.get('schema') or 'public'))
    max_parallel_workers, max_worker_processes = server_workers(conn)
    try:
        sized = concurrency.size(params['db_cpus'], tables, conn.server_version, max_parallel_workers,
                                 max_worker_processes, params['cpu_share'], params['off_peak'])
    except ValueError as exc:
        raise SpecError(str(exc))
    if params['parallelism'] > 0:
        sized['lanes'] = params['parallelism']
        sized['rule'] += '; parallelism %d set explicitly' % params['parallelism']
    if defaults.get('max_parallel_maintenance_workers') not in (None, ''):
        sized['workers'] = int(defaults['max_parallel_maintenance_workers'])
        sized['rule'] += '; max_parallel_maintenance_workers %d set explicitly' % sized['workers']
    elif sized['workers'] is not None:
        defaults['max_parallel_maintenance_workers'] = sized['workers']
    return sized['lanes'], sized


def failure_message(results, cancelled, cause):
    """The set's message: the first real cause (results.set_outcome), after what a cancelled job did."""
    if not cancelled:
        return cause
    failed = [r['name'] for r in results if r['failed']]
    done = [r['name'] for r in results if not r['failed']]
    return '%s. Cancelled or not started: %s; done: %s. %s' % (
        cancelled, ', '.join(failed), ', '.join(done) or 'none', cause)


def connection_factory(module, control):
    """The module's connections; those of a background job are registered with its job control."""
    if control is None:
        return module.connect
    return lambda: control.register(module.connect())


def run(module):
    params = module.params
    defaults = dict(params['defaults'])
    conn = module.connect()
    parallelism, sized = size_concurrency(conn, params, defaults)
    items = [dict(i, schema=i.get('schema') or defaults.get('schema') or 'public')
             for i in params['indexes'] if isinstance(i, dict)]
    states = progress.index_states(conn, items, workers=sized['workers'],
                                   maintenance_work_mem=defaults.get('maintenance_work_mem'))
    estimates = dict((s['name'], s['estimate_s']) for s in states)
    spills = dict((s['name'], s['sort_spills']) for s in states)
    conn.close()
    control = None
    if params['job'] and not module.check_mode:
        job = params['job']
        tables = sorted(set((i['schema'], i['table']) for i in items if i.get('table')))
        control = jobcontrol.JobControl(job['async_dir'], job['token'], job['heartbeat_timeout'], module.connect,
                                        progress=lambda monitor: progress.build_progress(monitor, tables),
                                        row_info=dict((name, dict(sort_spills=v)) for name, v in spills.items()))
        control.start(parallelism=parallelism, total=len(params['indexes']), concurrency=sized, estimates=estimates)
    try:
        results, duration, parallelism = ensure_index_set(
            connection_factory(module, control), params['indexes'], defaults, parallelism,
            stop_on_failure=params['on_error'] == 'stop', check_mode=module.check_mode, control=control)
    finally:
        if control is not None:
            control.close()
    for result in results:
        result['estimate_s'] = estimates.get(result['name'], 0.0) if result.get('action') in BUILDING_ACTIONS else 0.0
        for warning in result.pop('warnings', []):
            module.ansible.warn(warning)
    cancelled = control.cancelled() if control is not None else None
    set_outcome = outcome(results, check_mode=module.check_mode)
    summary = dict(changed=any(r.get('changed') for r in results), indexes=results, parallelism=parallelism,
                   duration_s=duration, diff=[r.pop('diff') for r in results if 'diff' in r], concurrency=sized,
                   cancelled=cancelled, leftovers=set_outcome['leftovers'])
    if set_outcome['failed']:
        raise PgIndexError(failure_message(results, cancelled, set_outcome['msg']), **summary)
    summary['msg'] = set_outcome['msg']
    return summary


def main():
    PgIndexModule('pg_index_set', ARGUMENT_SPEC).run(run)


if __name__ == '__main__':
    main()

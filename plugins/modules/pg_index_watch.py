#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ChefCloud Platform Engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: pg_index_watch
short_description: Watch what a change set of new indexes buys and costs after it is deployed
version_added: 1.0.0
description:
  - The runbook's Step 4 as software. Before the build, O(mode=snapshot) takes two readings O(window) seconds
    apart of the server's cumulative statistics, so "before" has rates. After the build, the action plugin of the
    same name samples every O(interval) seconds for O(duration) seconds (O(mode=sample) is one reading), prints a
    progress line per sample, and judges each sample against the snapshot.
  - "Benefit: the verification queries' calls and mean time in C(pg_stat_statements) (where it is loaded) and their
    p95 over O(latency_samples) timed executions; each new index's C(idx_scan) (the application's: the watch's own
    timed executions are subtracted)."
  - "Write cost, per table of the change set: the HOT-update ratio (C(n_tup_hot_upd / n_tup_upd) - an index on a
    column the application updates ends HOT updates), updates per second, table and index growth, and WAL bytes per
    transaction (C(pg_stat_wal), PostgreSQL 14+)."
  - "Health: rollbacks, deadlocks and recovery conflicts per second (C(pg_stat_database)), the sessions waiting on
    locks with the session at the root of each wait named, and the client connections."
  - The guard trips when a health or write-cost signal passes its threshold (O(thresholds)); O(on_regression) says
    what then happens - V(warn) goes on, V(fail) fails the task, V(rollback) stops and returns C(rollback=true) so that
    the role drops the change set's new indexes through its rollback tasks.
  - Read only. Its sessions use O(lock_timeout), so a sample never queues behind a lock; sizes then come from the
    catalog's last count.
author:
  - ChefCloud Platform Engineering (@chefcloud)
extends_documentation_fragment:
  - chefcloud.pgindex.postgres
  - chefcloud.pgindex.attributes
  - chefcloud.pgindex.attributes.read_only
attributes:
  action:
    support: full
    description: Indicates if an action plugin is used.
    details:
      - The action plugin runs the watch loop on the controller and calls the module for each reading.
  async:
    support: none
    description: Supports being used with the C(async) keyword.
    details:
      - The watch loop runs on the controller; it does not use async.
options:
  mode:
    description:
      - V(snapshot) - the reference, before the build. V(sample) - one reading. V(watch) - the loop (action plugin).
    type: str
    choices: [snapshot, sample, watch]
    default: watch
  indexes:
    description:
      - The change set's entries (C(name), C(table), optionally C(schema) and C(verify) - its query is timed and looked
        up in C(pg_stat_statements)).
    type: list
    elements: dict
    required: true
  schema:
    description: Schema of the entries that do not name one.
    type: str
    default: public
  window:
    description: Seconds between the two readings of a snapshot (V(0) - one reading; the guard then compares with the
      counters since the statistics were reset, and has no rates before).
    type: float
    default: 10
  latency_samples:
    description: Timed executions of each verification query per reading (V(0) - none).
    type: int
    default: 5
  query_timeout:
    description: C(statement_timeout) of each timed execution.
    type: str
    default: 5s
  lock_timeout:
    description: C(lock_timeout) of the watch's session.
    type: str
    default: 1s
  duration:
    description: Seconds to watch (V(mode=watch)). V(0) turns the watch off. The runbook watches 1-2 hours - V(3600).
    type: float
    default: 0
  interval:
    description: Seconds between samples (V(mode=watch)).
    type: float
    default: 60
  snapshot:
    description: The RV(snapshot) the V(mode=snapshot) run returned before the build (V(mode=watch)).
    type: dict
  new_indexes:
    description: Indexes the build created in this run, as C(name) or C(schema.name); their growth is judged and
      C(rollback) drops them.
    type: list
    elements: str
    default: []
  thresholds:
    description:
      - The guard's limits (see docs/watch.md); anything not given keeps its default.
    type: dict
    default: {}
    suboptions:
      max_hot_ratio_drop:
        description: Percentage points a table's HOT ratio may fall below its ratio before the build.
        type: float
        default: 20
      min_updates:
        description: Updates of a table, in the watch and in the snapshot, before its HOT ratio is judged.
        type: float
        default: 100
      max_wal_per_xact_increase:
        description: Percent WAL bytes per transaction may rise.
        type: float
        default: 100
      min_transactions:
        description: Transactions, in the watch and in the snapshot, before WAL per transaction is judged.
        type: float
        default: 100
      max_table_growth:
        description: Percent a table may grow during the watch (growth under 1 MiB never trips).
        type: float
        default: 20
      max_index_growth:
        description: Percent a new index may grow during the watch (growth under 1 MiB never trips).
        type: float
        default: 50
      max_rollback_rate_increase:
        description: Rollbacks per second the watch may add to the rate before the build.
        type: float
        default: 1
      max_deadlocks:
        description: Deadlocks the watch may count above the rate before the build.
        type: float
        default: 0
      max_conflicts:
        description: Recovery conflicts the watch may count above the rate before the build.
        type: float
        default: 0
      max_lock_waiters:
        description: Sessions waiting on a lock at one sample.
        type: float
        default: 5
      max_connection_increase:
        description: Percent the client connections may rise (an increase of 5 or fewer never trips).
        type: float
        default: 50
  on_regression:
    description: What a tripped signal does - V(warn), V(fail) (the task fails, naming the signal with its numbers),
      or V(rollback) (the watch stops and returns C(rollback=true); the role drops the new indexes).
    type: str
    choices: [warn, fail, rollback]
    default: warn
notes:
  - The counters of C(pg_stat_*) are flushed by each backend at most once a second; a sample sees them that late.
"""

EXAMPLES = r"""
- name: Snapshot before the build
  chefcloud.pgindex.pg_index_watch:
    mode: snapshot
    indexes: "{{ pgindex_indexes }}"
    window: 10
  register: before

- name: Watch for an hour after the build, a sample a minute, rolling back on a regression
  chefcloud.pgindex.pg_index_watch:
    indexes: "{{ pgindex_indexes }}"
    snapshot: "{{ before.snapshot }}"
    duration: 3600
    interval: 60
    on_regression: rollback
    new_indexes: [idx_payments_org_status_created]
  register: watch
"""

RETURN = r"""
snapshot:
  description: The readings before the build (V(mode=snapshot)); pass it to the watch.
  returned: mode=snapshot
  type: dict
reading:
  description: One reading (V(mode=sample)) - counters, tables, indexes, lock waits and blockers, statements, latency.
  returned: mode=sample
  type: dict
enabled:
  description: Whether the watch ran (V(false) when O(duration=0)).
  returned: mode=watch
  type: bool
verdict:
  description: V(pass), V(regressed) or V(off).
  returned: mode=watch
  type: str
  sample: regressed
tripped:
  description: The signals that passed their threshold, each with C(signal), C(table), C(value), C(threshold),
    C(before) and C(message).
  returned: mode=watch
  type: list
  elements: dict
rollback:
  description: V(true) when O(on_regression=rollback) and a signal tripped - the role drops O(new_indexes).
  returned: mode=watch
  type: bool
samples:
  description: The series - per sample C(t) (seconds since the watch started), C(cells) (the columns shown, by name) and
    C(window) (every signal of the watch so far).
  returned: mode=watch
  type: list
  elements: dict
lines:
  description: The progress lines printed while watching.
  returned: mode=watch
  type: list
  elements: str
"""

from ansible_collections.chefcloud.pgindex.plugins.module_utils import watch
from ansible_collections.chefcloud.pgindex.plugins.module_utils.module import PgIndexModule

ARGUMENT_SPEC = dict(
    mode=dict(type='str', choices=['snapshot', 'sample', 'watch'], default='watch'),
    indexes=dict(type='list', elements='dict', required=True),
    schema=dict(type='str', default='public'),
    window=dict(type='float', default=10),
    latency_samples=dict(type='int', default=5),
    query_timeout=dict(type='str', default='5s'),
    lock_timeout=dict(type='str', default='1s'),
    duration=dict(type='float', default=0),
    interval=dict(type='float', default=60),
    snapshot=dict(type='dict'),
    new_indexes=dict(type='list', elements='str', default=[]),
    thresholds=dict(type='dict', default={}, options=dict(
        (name, dict(type='float', default=default)) for name, (default, _doc) in watch.THRESHOLDS.items())),
    on_regression=dict(type='str', choices=['warn', 'fail', 'rollback'], default='warn'),
)


def run(module):
    p = module.params
    mode = 'sample' if p['mode'] == 'watch' else p['mode']   # the loop itself lives in the action plugin
    return watch.run(module.connect, mode, p['indexes'], p['schema'], p['window'], p['latency_samples'],
                     p['query_timeout'], p['lock_timeout'])


def main():
    PgIndexModule('pg_index_watch', ARGUMENT_SPEC).run(run)


if __name__ == '__main__':
    main()

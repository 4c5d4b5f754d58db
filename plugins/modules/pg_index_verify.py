#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ChefCloud Platform Engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: pg_index_verify
short_description: Prove that PostgreSQL indexes are valid, used by their queries, and made them faster
version_added: 1.0.0
description:
  - Read-only verification of a change set of indexes, reporting numbers where a runbook reads
    C(\d+), C(EXPLAIN) output and a dashboard by eye. Fails when a check fails, returning every result.
  - B(Index) - exists on the expected table, C(indisvalid), C(indisready) and C(indislive), and its definition
    is the desired one, compared exactly as M(chefcloud.pgindex.pg_concurrent_index) compares it (the desired
    definition normalized by the server on an empty temporary copy of the table, in a rolled-back
    transaction). Size in bytes and as C(pg_size_pretty). With O(state=absent), that each index is gone.
  - B(amcheck) - optionally C(bt_index_check) (O(amcheck=on)), with C(heapallindexed) (O(amcheck=heapallindexed)),
    when the C(amcheck) extension is installed. The extension is only created when O(create_amcheck=true).
  - B(Plan) - C(EXPLAIN) (with C(VERBOSE) and C(FORMAT JSON)) of each index's verification query (C(verify.query) of the
    change set entry, its parameters bound by psycopg2); the plan tree must hold an C(Index Scan),
    C(Index Only Scan) or C(Bitmap Index Scan) on the index, else the check fails (or warns) and shows the plan.
    C(EXPLAIN ANALYZE) only with O(explain_analyze=true), since it executes the query.
  - B(Latency) - each verification query is executed O(warmup) + O(samples) times and p50/p95/p99 are reported.
    Each execution runs under a C(statement_timeout) that is the smaller of O(query_timeout) and what is left
    of the per-query time budget O(query_budget); the cost of sampling is reported. With O(baseline) (the
    result of an earlier O(phase=baseline) run, taken before the build), p95 before, after and the reduction in
    percent are compared with O(target_reduction). Where pg_stat_statements is loaded (PostgreSQL 14+),
    its call count and mean execution time for the query are reported too.
  - B(Usage) - C(idx_scan) and size from C(pg_stat_user_indexes), read before the module's own executions; with
    O(list_unused=true), the unused, duplicate and redundant indexes of the change set's tables.
  - Verification queries must be a single query (C(SELECT), C(WITH), C(VALUES) or C(TABLE)); they only run
    inside a C(READ ONLY) transaction that is rolled back, so they cannot change data.
author:
  - ChefCloud Platform Engineering (@chefcloud)
extends_documentation_fragment:
  - chefcloud.pgindex.postgres
  - chefcloud.pgindex.attributes
  - chefcloud.pgindex.attributes.read_only
options:
  indexes:
    description:
      - The change set's entries, as the role's C(pgindex_indexes) holds them.
      - Each entry defines an index with the keys M(chefcloud.pgindex.pg_concurrent_index) takes (C(name), C(table),
        C(columns), C(schema), C(unique)...); C(lock_timeout) bounds the lock wait of the definition check; any other
        key is an error with a "did you mean" hint, read by the same reader as M(chefcloud.pgindex.pg_index_set).
      - C(verify) (optional) is a dict with C(query), a single read-only SQL query with named placeholders such as %(org_id)s
        (a literal C(%) is written C(%%)), C(params), the values of its placeholders, bound by psycopg2, and
        C(label), a name for reports (for example the endpoint).
    type: list
    elements: dict
    required: true
  schema:
    description:
      - Schema of the entries that do not name one.
    type: str
    default: public
  state:
    description:
      - V(present) verifies the indexes; V(absent) verifies that they are gone (nothing else is checked).
    type: str
    choices: [present, absent]
    default: present
  phase:
    description:
      - V(verify) runs every check.
      - V(baseline) runs before the build and judges nothing; it times the queries of the indexes that are not
        in place yet (missing, INVALID or drifted) and records their plans, to be passed as O(baseline) afterwards.
    type: str
    choices: [verify, baseline]
    default: verify
  baseline:
    description:
      - The C(indexes) returned by an earlier O(phase=baseline) run; p95 before and after are compared with it.
    type: list
    elements: dict
  plan_check:
    description:
      - What to do when the planner does not use an index for its verification query.
    type: str
    choices: [fail, warn, skip]
    default: fail
  analyze:
    description:
      - Run C(ANALYZE) on the change set's tables first, since a fresh index planned on stale statistics may not be
        chosen. This writes statistics (the module then reports C(changed)); check mode skips it.
    type: bool
    default: false
  explain_analyze:
    description:
      - Use C(EXPLAIN ANALYZE) (with C(BUFFERS)) for the plan check. It executes the query (read-only, rolled back, under
        O(query_timeout)) and reports its actual time.
    type: bool
    default: false
  samples:
    description:
      - Timed executions of each verification query. V(0) turns latency sampling off.
    type: int
    default: 30
  warmup:
    description:
      - Executions of each query before the timed ones, not counted (they warm the cache).
    type: int
    default: 1
  query_timeout:
    description:
      - C(statement_timeout) of each verification statement (plan check and every sample), as PostgreSQL accepts
        it (V(5s), V(500ms), V(0) for none). A sample cancelled by it counts at the timeout, stops the sampling of
        that query, and makes its percentiles lower bounds.
    type: str
    default: 5s
  query_budget:
    description:
      - Seconds that timing one query may take in total (warm-up included). Each execution's C(statement_timeout)
        is lowered to what is left of it, so the budget holds even for a slow sequential scan.
    type: float
    default: 30
  latency_check:
    description:
      - What to do when p95 did not drop by O(target_reduction) percent against the baseline.
    type: str
    choices: [fail, warn, skip]
    default: warn
  target_reduction:
    description:
      - Expected p95 reduction in percent (the runbook's success criterion is at least 50).
    type: float
    default: 50
  amcheck:
    description:
      - V(on) runs C(bt_index_check) on each valid B-tree index; V(heapallindexed) also checks that every heap tuple
        has an index entry (reads the whole table). Skipped with a warning when amcheck is not installed.
    type: str
    choices: ['off', 'on', heapallindexed]
    default: 'off'
  create_amcheck:
    description:
      - Create the C(amcheck) extension when it is missing (C(CREATE EXTENSION amcheck); check mode only says so).
    type: bool
    default: false
  list_unused:
    description:
      - Also list the unused (C(idx_scan = 0), not backing a constraint), duplicate and redundant (key columns
        leading another B-tree's) indexes of the change set's tables, with when the statistics were reset.
    type: bool
    default: false
  lock_timeout:
    description:
      - C(lock_timeout) of the session (definition check, ANALYZE, EXPLAIN), unless an entry sets its own.
    type: str
    default: 5s
attributes:
  check_mode:
    support: partial
    details:
      - Every check runs, read only, as in a real run; the only writes, O(analyze) and O(create_amcheck), are
        skipped, so the plan check uses the statistics as they are and amcheck is skipped when the extension is
        missing.
notes:
  - Supports C(check_mode); the only writes, O(analyze) and O(create_amcheck), are then skipped.
  - Run it against the primary; the definition check needs a temporary table.
  - C(bt_index_check) needs superuser or an explicit C(GRANT EXECUTE) on it; pg_stat_statements needs
    C(shared_preload_libraries) and C(CREATE EXTENSION pg_stat_statements).
seealso:
  - module: chefcloud.pgindex.pg_concurrent_index
  - name: amcheck
    description: PostgreSQL documentation of the amcheck module.
    link: https://www.postgresql.org/docs/current/amcheck.html
"""

EXAMPLES = r"""
- name: Time the verification queries before the build (small, bounded sample)
  chefcloud.pgindex.pg_index_verify:
    phase: baseline
    indexes: "{{ pgindex_indexes }}"
    samples: 5
    query_budget: 10
  register: before

- name: Build the indexes
  chefcloud.pgindex.pg_concurrent_index:
    name: "{{ item.name }}"
    table: "{{ item.table }}"
    columns: "{{ item.columns }}"
  loop: "{{ pgindex_indexes }}"

- name: Prove them valid, used, and faster than before
  chefcloud.pgindex.pg_index_verify:
    indexes: "{{ pgindex_indexes }}"
    baseline: "{{ before.indexes }}"
    amcheck: 'on'
  register: verified

- name: One index, its query given inline, plan check only
  chefcloud.pgindex.pg_index_verify:
    db: chefcloud_prod
    samples: 0
    indexes:
      - name: idx_fr_overview_org_period
        table: franchise_overview
        columns: [org_id, period]
        verify:
          label: GET /franchise/overview
          query: SELECT * FROM franchise_overview WHERE org_id = %(org_id)s AND period = %(period)s LIMIT 50
          params: {org_id: ORG_12345, period: '2025-11'}

- name: After a rollback, prove the indexes are gone
  chefcloud.pgindex.pg_index_verify:
    indexes: "{{ pgindex_indexes }}"
    state: absent
"""

RETURN = r"""
ok:
  description: Whether every check passed (warnings allowed).
  returned: always
  type: bool
  sample: true
phase:
  description: The phase that ran.
  returned: always
  type: str
  sample: verify
database:
  description: Database verified.
  returned: always
  type: str
  sample: chefcloud_prod
server_version:
  description: C(server_version_num) of the server.
  returned: always
  type: int
  sample: 180001
problems:
  description: Every failed check, one message each (the plan is shown for a plan check failure).
  returned: always
  type: list
  elements: str
summary:
  description:
    - One flat entry per index for reports - C(name), C(table), C(valid), C(definition_matches), C(size_bytes),
      C(size), C(amcheck), C(plan) (check status), C(scan) (how the query reads its table), C(scan_before),
      C(p95_before_ms), C(p95_after_ms), C(reduction_pct), C(target_pct), C(meets_target), C(samples_before),
      C(samples_after), C(pgss_mean_ms), C(idx_scan), C(ok) and C(problems).
  returned: always
  type: list
  elements: dict
indexes:
  description:
    - Everything measured per index - the catalog facts (C(exists), C(valid), C(ready), C(live), C(definition),
      C(desired_definition), C(definition_matches), C(size_bytes), C(size)), C(usage) (pg_stat_user_indexes),
      C(amcheck), C(plan) (C(status), C(query) as bound, C(index_scans), C(plan_text), C(plan) as JSON,
      C(query_identifier)), C(latency) (C(samples_ms), C(p50_ms), C(p95_ms), C(p99_ms), C(cost_s)...),
      C(pg_stat_statements), C(before) (from O(baseline)), C(reduction), C(problems), C(warnings).
    - Pass this list as O(baseline) of a later run when it comes from O(phase=baseline).
  returned: always
  type: list
  elements: dict
sampling:
  description: What latency sampling cost - queries timed, executions, seconds, timeouts, the limits used.
  returned: always
  type: dict
  sample: {queries: 6, executions: 36, seconds: 0.41, timeouts: 0, budget_exhausted: 0, samples: 5,
           warmup: 1, query_timeout_ms: 5000, query_budget_s: 10.0}
amcheck:
  description: The amcheck mode, the schema of the extension (null when not installed) and whether it was created.
  returned: always
  type: dict
  sample: {mode: 'on', schema: public, created: false}
analyzed:
  description: Tables analyzed (O(analyze=true)).
  returned: always
  type: list
  elements: str
review:
  description: With O(list_unused=true) - C(stats_reset), C(unused), C(duplicates) and C(redundant) indexes of the tables.
  returned: when list_unused is true
  type: dict
"""

from ansible_collections.chefcloud.pgindex.plugins.module_utils.module import PgIndexModule
from ansible_collections.chefcloud.pgindex.plugins.module_utils.verify import VERIFY_ARGUMENT_SPEC, verify_indexes

ARGUMENT_SPEC = VERIFY_ARGUMENT_SPEC


def run(module):
    options = dict((key, module.params[key]) for key in ARGUMENT_SPEC if key != 'indexes')
    return verify_indexes(module.connect, module.params['indexes'], options, check_mode=module.check_mode)


def main():
    module = PgIndexModule('pg_index_verify', ARGUMENT_SPEC)
    module.run(run)


if __name__ == '__main__':
    main()

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ChefCloud Platform Engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: pg_concurrent_index
short_description: Create or drop a PostgreSQL index concurrently, comparing definitions, not names
version_added: 1.0.0
description:
  - Builds an index with C(CREATE INDEX CONCURRENTLY) so that writes to the table are never blocked,
    and drops one with C(DROP INDEX CONCURRENTLY).
  - Idempotent on the definition, not the name. The desired definition is normalized by the server
    itself (the index is built on an empty temporary copy of the table, in a transaction that is
    rolled back) and compared with C(pg_get_indexdef) of the existing index. An index of the same name
    with another definition, or on another table, is reported as drift and the module fails showing both.
  - An existing INVALID index (left by a failed or interrupted concurrent build, which
    C(CREATE INDEX IF NOT EXISTS) would silently keep) is dropped concurrently and built again,
    unless another session is building it right now.
  - When a concurrent build fails, the INVALID index it leaves behind is dropped before the failure is reported.
  - Every failed build is cleaned up, and lock waits are bounded and retried (see O(lock_timeout),
    O(snapshot_wait_timeout), O(retries)); each lock failure names the blocking sessions.
  - On a partitioned table, where C(CREATE INDEX CONCURRENTLY) is refused, the index is created C(ON ONLY)
    the parent, then built concurrently on each partition and attached, resumably.
  - In check mode only catalog reads and the rolled-back normalization are sent; the result lists the
    exact SQL that would run. With C(--diff) the existing and planned definitions are shown.
  - Refuses servers older than PostgreSQL 13, standbys (servers in recovery), and concurrent builds on
    PostgreSQL 14.0 to 14.3, whose concurrent builds could miss rows (fixed in 14.4).
author:
  - ChefCloud Platform Engineering (@chefcloud)
extends_documentation_fragment:
  - chefcloud.pgindex.postgres
  - chefcloud.pgindex.attributes
  - chefcloud.pgindex.attributes.changes
options:
  name:
    description:
      - Name of the index. At most 63 bytes (PostgreSQL would silently truncate a longer one).
      - Any characters are allowed; the name is always quoted, so case is kept.
    type: str
    required: true
    aliases: [index]
  table:
    description:
      - Table the index is on. Required with O(state=present).
      - With O(state=absent), when given, an index of that name on another table is not dropped.
    type: str
  schema:
    description:
      - Schema of the table and of the index.
    type: str
    default: public
  columns:
    description:
      - The keys of the index, in order. Required with O(state=present).
      - Each item is a column name, or a dictionary with exactly one of C(name) (a column) or
        C(expression) (an SQL expression, for example V(lower(sku\))), and optionally C(order)
        (V(asc)/V(desc)), C(nulls) (V(first)/V(last)), C(opclass) (an operator class, V(name) or
        V(schema.name)) and C(collation) (V(name) or V(schema.name)).
      - An C(expression) must be a single SQL expression - balanced parentheses, no C(;) and no comment
        outside string literals. The server then parses it on an empty copy of the table in a
        transaction that is rolled back, so an invalid expression fails before anything is built.
    type: list
    elements: raw
    aliases: [column]
  method:
    description:
      - Index access method.
    type: str
    choices: [btree, hash, gin, gist, brin, spgist]
    default: btree
  unique:
    description:
      - Build a unique index. When existing rows violate it, the build fails with the offending key from
        the server and the number of duplicate key groups, and leaves no INVALID index behind.
    type: bool
    default: false
  nulls_not_distinct:
    description:
      - With O(unique), treat NULLs as equal (C(NULLS NOT DISTINCT)). Needs PostgreSQL 15 or newer; older
        servers are refused with a clear message before anything runs.
    type: bool
    default: false
  include:
    description:
      - Non-key columns stored in the index (C(INCLUDE)), for index-only scans.
    type: list
    elements: str
  where:
    description:
      - Predicate of a partial index, a single SQL boolean expression (same rules as an C(expression)).
    type: str
  tablespace:
    description:
      - Tablespace to build the index in. When set, an existing index in another tablespace is drift.
    type: str
  storage_params:
    description:
      - Index storage parameters (C(WITH (...))), for example C({fillfactor - 90}) or C({deduplicate_items - false}).
    type: dict
  state:
    description:
      - V(present) builds the index if it is missing or INVALID.
      - V(absent) drops it if it exists (concurrently; an index on a partitioned table can only be dropped with
        a plain C(DROP INDEX), bounded by O(lock_timeout)).
    type: str
    choices: [present, absent]
    default: present
  on_drift:
    description:
      - What to do when an index of that name exists, valid, with another definition or in another tablespace.
      - V(fail) fails and shows both definitions.
      - V(replace) builds the desired index concurrently under a temporary name (C(<name>_pgixnew)), drops the old
        one concurrently and renames the new one, so the table is never without the index. A rerun after a
        failure resumes from the temporary index. Not available on partitioned tables.
      - V(ignore) leaves it and warns.
      - An index of that name on another table is never replaced or dropped.
    type: str
    choices: [fail, replace, ignore]
    default: fail
  on_invalid:
    description:
      - What to do when the index exists but is INVALID (a failed or interrupted concurrent build).
      - V(rebuild) drops it concurrently and builds it again (on a partitioned table, finishes the partitions
        that have no attached index yet).
      - V(fail) fails and leaves it.
    type: str
    choices: [rebuild, fail]
    default: rebuild
  on_build_in_progress:
    description:
      - What to do when another session is building this index right now (seen in C(pg_stat_progress_create_index)).
        Its index is INVALID until it finishes and is never dropped from under it.
      - V(fail) fails naming that session; V(wait) waits up to O(build_wait_timeout) seconds for it to finish.
    type: str
    choices: [fail, wait]
    default: fail
  build_wait_timeout:
    description:
      - Seconds to wait with O(on_build_in_progress=wait).
    type: int
    default: 600
  lock_timeout:
    description:
      - Longest wait for a lock on the table (or index), as PostgreSQL writes durations (V(5s), V(500ms), V(2min);
        V(0) waits forever).
      - Enforced by the module, not by the server setting, so that it applies to the table lock only - the
        build session runs with C(lock_timeout=0) and a second session cancels it when the wait exceeds this.
      - A statement cancelled this way is retried (O(retries)).
    type: str
    default: 5s
  snapshot_wait_timeout:
    description:
      - Longest wait for transactions older than the build's snapshot to finish (a concurrent build must outwait
        every one of them, twice). Same format as O(lock_timeout); V(0) waits forever.
      - Not retried, since retrying does not help while an unrelated long transaction stays open - the result names
        the blocking sessions (O(ignore:blockers)).
    type: str
    default: 30min
  retries:
    description:
      - How many times a statement that timed out waiting for the table lock (or deadlocked) is tried again,
        after cleaning up what the failed attempt left.
    type: int
    default: 3
  retry_delay:
    description:
      - Seconds before the first retry; each retry doubles it (at most 60 s), with random jitter.
    type: float
    default: 2.0
  statement_timeout:
    description:
      - C(statement_timeout) of the build session. The default V(0) (no limit) overrides a role or database
        default that would otherwise kill a long build halfway and leave an INVALID index.
    type: str
    default: '0'
  maintenance_work_mem:
    description:
      - C(maintenance_work_mem) of the build session (for example V(1GB)); the server default when omitted.
    type: str
  max_parallel_maintenance_workers:
    description:
      - C(max_parallel_maintenance_workers) of the build session; the server default when omitted.
    type: int
notes:
  - Supports C(check_mode) and C(diff).
  - C(CREATE INDEX CONCURRENTLY) needs ownership of the table (or membership in its owning role).
seealso:
  - name: Building indexes concurrently
    description: PostgreSQL documentation of CREATE INDEX CONCURRENTLY and its failure modes.
    link: https://www.postgresql.org/docs/current/sql-createindex.html#SQL-CREATEINDEX-CONCURRENTLY
"""

EXAMPLES = r"""
- name: Build the franchise overview index without blocking writes
  chefcloud.pgindex.pg_concurrent_index:
    name: idx_fr_overview_org_period
    table: franchise_overview
    columns: [org_id, period]
    db: chefcloud_prod

- name: Show the SQL that would run, change nothing (run the task in check mode)
  chefcloud.pgindex.pg_concurrent_index:
    name: idx_payments_org_status_created
    table: payments
    columns: [org_id, status, created_at]
  check_mode: true
  register: planned

- name: Roll back an index
  chefcloud.pgindex.pg_concurrent_index:
    name: idx_fr_overview_org_period
    table: franchise_overview
    state: absent

- name: A partial, covering, expression index; replace an older definition without a gap
  chefcloud.pgindex.pg_concurrent_index:
    name: idx_inv_batches_open_sku
    table: inventory_batches
    columns:
      - org_id
      - expression: lower(sku)
        opclass: text_pattern_ops
      - name: received_at
        order: desc
        nulls: last
    include: [quantity]
    where: "expires_at IS NOT NULL"
    storage_params:
      fillfactor: 90
    on_drift: replace

- name: Wait up to 1 minute for the table lock, 2 hours for old transactions, retry lock waits 5 times
  chefcloud.pgindex.pg_concurrent_index:
    name: idx_payments_org_status_created
    table: payments
    columns: [org_id, status, created_at]
    lock_timeout: 1min
    snapshot_wait_timeout: 2h
    retries: 5
    maintenance_work_mem: 1GB
    max_parallel_maintenance_workers: 2

- name: Index a partitioned table (ON ONLY parent, then each partition concurrently, then attach)
  chefcloud.pgindex.pg_concurrent_index:
    name: idx_events_org_created
    table: events
    columns: [org_id, created_at]

- name: Never touch an INVALID index or one being built by someone else; wait up to 10 minutes for their build
  chefcloud.pgindex.pg_concurrent_index:
    name: idx_po_org_status_created
    table: purchase_orders
    columns: [org_id, status, created_at]
    on_invalid: fail
    on_build_in_progress: wait
    build_wait_timeout: 600

- name: A unique index that treats NULLs as equal (PostgreSQL 15+), in its own tablespace
  chefcloud.pgindex.pg_concurrent_index:
    name: idx_payments_order_u
    table: payments
    columns: [order_id]
    unique: true
    nulls_not_distinct: true
    tablespace: fast_ssd

- name: Set the connection once for several tasks
  module_defaults:
    group/chefcloud.pgindex.postgresql:
      login_host: db1.internal
      login_user: deployer
      login_password: "{{ vault_pg_password }}"
      db: chefcloud_prod
  block:
    - name: Build an index with a longer lock wait
      chefcloud.pgindex.pg_concurrent_index:
        name: idx_inv_batches_org_sku
        table: inventory_batches
        columns: [org_id, sku]
        lock_timeout: 30s
"""

RETURN = r"""
action:
  description: What was done (or, in check mode, would be done).
  returned: always
  type: str
  sample: created
  choices: [none, created, rebuilt, replaced, resumed, dropped]
name:
  description: Name of the index.
  returned: always
  type: str
  sample: idx_fr_overview_org_period
schema:
  description: Schema of the index.
  returned: always
  type: str
  sample: public
table:
  description: Table of the index.
  returned: always
  type: str
  sample: franchise_overview
queries:
  description: SQL statements executed, or in check mode the statements that would be executed.
  returned: always
  type: list
  elements: str
  sample: ['CREATE INDEX CONCURRENTLY "idx_fr_overview_org_period" ON "public"."franchise_overview" USING btree ("org_id", "period")']
valid:
  description: C(pg_index.indisvalid) of the index after the run; null when it does not exist (or in check mode when a change is planned).
  returned: always
  type: bool
  sample: true
definition:
  description: C(pg_get_indexdef) of the index after the run, or in check mode the planned definition; null when absent.
  returned: always
  type: str
  sample: CREATE INDEX idx_fr_overview_org_period ON public.franchise_overview USING btree (org_id, period)
size_bytes:
  description: Size of the index on disk after the run; null when absent or in check mode.
  returned: always
  type: int
  sample: 4513792
duration_s:
  description: Seconds spent executing the plan (0 when nothing was executed).
  returned: always
  type: float
  sample: 2.417
attempts:
  description: Attempts made to run the plan (retries included); 0 when nothing was executed.
  returned: always
  type: int
  sample: 2
blockers:
  description:
    - Sessions seen blocking a statement while it waited (from C(pg_blocking_pids) and C(pg_stat_activity)).
    - C(wait) says which wait they blocked, C(lock_timeout) (the table lock) or C(snapshot_wait_timeout) (older transactions).
  returned: always
  type: list
  elements: dict
  sample: [{pid: 4242, user: app, application_name: billing-worker, state: idle in transaction, xact_age_s: 912.4,
            query: 'SELECT * FROM payments WHERE id = 1', backend_type: client backend, wait: snapshot_wait_timeout}]
partitions:
  description: On a partitioned table, one entry per partition with the index built there and what was done.
  returned: always
  type: list
  elements: dict
  sample: [{partition: public.payments_2025_11, index: public.payments_2025_11_idx_payments_org_status_created,
            action: created}]
wait:
  description: Which wait timed out when a statement was cancelled by the module, C(lock_timeout) or C(snapshot_wait_timeout).
  returned: on failure of a statement
  type: str
  sample: lock_timeout
sqlstate:
  description: SQLSTATE of the statement that failed.
  returned: on failure of a statement
  type: str
  sample: 55P03
failed_query:
  description: The statement that failed.
  returned: on failure of a statement
  type: str
cleaned_up:
  description: INVALID indexes that failed builds left behind and that were dropped.
  returned: always
  type: list
  elements: str
  sample: [public.idx_fr_overview_org_period]
existing_definition:
  description: Definition of the existing index when it does not match (drift).
  returned: on drift
  type: str
desired_definition:
  description: Definition the change set asks for, normalized by the server, when it does not match (drift).
  returned: on drift
  type: str
"""

from ansible_collections.chefcloud.pgindex.plugins.module_utils.ensure import ensure_index
from ansible_collections.chefcloud.pgindex.plugins.module_utils.changeset import (
    INDEX_ARGUMENT_SPEC, INDEX_REQUIRED_IF, split_params)
from ansible_collections.chefcloud.pgindex.plugins.module_utils.index_spec import IndexSpec
from ansible_collections.chefcloud.pgindex.plugins.module_utils.module import PgIndexModule


def run(module):
    settings, options = split_params(module.params)
    return ensure_index(module.connect, IndexSpec.from_params(module.params), module.params['state'], settings,
                        check_mode=module.check_mode, options=options)


def main():
    module = PgIndexModule('pg_concurrent_index', INDEX_ARGUMENT_SPEC, required_if=INDEX_REQUIRED_IF)
    module.run(run)


if __name__ == '__main__':
    main()

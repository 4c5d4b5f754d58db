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
version_added: 0.1.0
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
  - In check mode only catalog reads and the rolled-back normalization are sent; the result lists the
    exact SQL that would run. With C(--diff) the existing and planned definitions are shown.
  - Refuses servers older than PostgreSQL 13, standbys (servers in recovery), and concurrent builds on
    PostgreSQL 14.0 to 14.3, whose concurrent builds could miss rows (fixed in 14.4).
author:
  - ChefCloud Platform Engineering (@chefcloud)
extends_documentation_fragment:
  - chefcloud.pgindex.postgres
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
      - Column names, in index order. Required with O(state=present).
    type: list
    elements: str
    aliases: [column]
  unique:
    description:
      - Build a unique index.
    type: bool
    default: false
  state:
    description:
      - V(present) builds the index if it is missing or INVALID.
      - V(absent) drops it if it exists.
    type: str
    choices: [present, absent]
    default: present
  lock_timeout:
    description:
      - C(lock_timeout) of the build session, as PostgreSQL accepts it (V(5s), V(500ms), V(0) for none).
      - Bounds the wait for the table lock; a concurrent build also waits for older transactions
        under this setting. A build that times out is cleaned up and the module fails naming the error.
    type: str
    default: 5s
  statement_timeout:
    description:
      - C(statement_timeout) of the build session. The default V(0) (no limit) overrides a role or database
        default that would otherwise kill a long build halfway and leave an INVALID index.
    type: str
    default: '0'
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
  choices: [none, created, rebuilt, dropped]
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
  description: INVALID indexes that a failed build left behind and that were dropped before failing.
  returned: on failure of a statement
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
from ansible_collections.chefcloud.pgindex.plugins.module_utils.index_spec import IndexSpec
from ansible_collections.chefcloud.pgindex.plugins.module_utils.module import PgIndexModule

ARGUMENT_SPEC = dict(
    name=dict(type='str', required=True, aliases=['index']),
    table=dict(type='str'),
    schema=dict(type='str', default='public'),
    columns=dict(type='list', elements='raw', aliases=['column']),
    method=dict(type='str', default='btree', choices=['btree', 'hash', 'gin', 'gist', 'brin', 'spgist']),
    unique=dict(type='bool', default=False),
    nulls_not_distinct=dict(type='bool', default=False),
    include=dict(type='list', elements='str'),
    where=dict(type='str'),
    tablespace=dict(type='str'),
    storage_params=dict(type='dict'),
    state=dict(type='str', default='present', choices=['present', 'absent']),
    on_drift=dict(type='str', default='fail', choices=['fail', 'replace', 'ignore']),
    on_invalid=dict(type='str', default='rebuild', choices=['rebuild', 'fail']),
    on_build_in_progress=dict(type='str', default='fail', choices=['fail', 'wait']),
    build_wait_timeout=dict(type='int', default=600),
    lock_timeout=dict(type='str', default='5s'),
    snapshot_wait_timeout=dict(type='str', default='30min'),
    retries=dict(type='int', default=3),
    retry_delay=dict(type='float', default=2.0),
    statement_timeout=dict(type='str', default='0'),
    maintenance_work_mem=dict(type='str'),
    max_parallel_maintenance_workers=dict(type='int'),
)

POLICY_OPTIONS = ('on_drift', 'on_invalid', 'on_build_in_progress', 'build_wait_timeout', 'lock_timeout',
                  'snapshot_wait_timeout', 'retries', 'retry_delay')


def run(module):
    params = module.params
    # statement_timeout first: a tiny role or database default must not cancel the other settings.
    settings = dict((name, params[name]) for name in
                    ('statement_timeout', 'maintenance_work_mem', 'max_parallel_maintenance_workers'))
    options = dict((name, params[name]) for name in POLICY_OPTIONS)
    return ensure_index(module.connect, IndexSpec.from_params(params), params['state'], settings,
                        check_mode=module.check_mode, options=options)


def main():
    module = PgIndexModule('pg_concurrent_index', ARGUMENT_SPEC,
                           required_if=[('state', 'present', ('table', 'columns'))])
    module.run(run)


if __name__ == '__main__':
    main()

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ChefCloud Platform Engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: pg_preflight
short_description: Tell whether it is safe to build (or drop) a set of PostgreSQL indexes now, and if not, why
version_added: 1.0.0
description:
  - Read-only checks to run before C(CREATE INDEX CONCURRENTLY) touches a production database. Each check
    returns a status (V(pass), V(warn) or V(fail)), a message a DBA can act on, and its data.
  - The module fails only when a check has status V(fail); warnings are reported and do not stop anything.
    Thresholds are options.
  - C(server) - version at least O(min_version) and not 14.0 to 14.3 (whose concurrent builds could miss rows),
    not a standby, the session's user and database, and role or database defaults (C(pg_db_role_setting)) of
    C(statement_timeout), C(lock_timeout), C(idle_session_timeout) and C(transaction_timeout) that hurt a long build.
  - C(privileges) - ownership of each table (or membership in the owning role), C(CREATE) on its schema and on the
    tablespace each index goes to; says which table fails and who owns it.
  - C(tables) - each table exists and can carry an index (not a view or a foreign table); its size, estimated
    row count and whether it is partitioned.
  - C(indexes) - each index observed and planned exactly as M(chefcloud.pgindex.pg_concurrent_index) would -
    absent, present and identical, INVALID, drifted, being built right now by another session; and any
    equivalent index under another name (redundant).
  - C(activity) - transactions older than O(max_transaction_age), sessions idle in transaction, prepared
    transactions, locks on the tables that conflict with C(SHARE UPDATE EXCLUSIVE), running C(VACUUM) or
    autovacuum, and other index builds on the tables, each with pid, user, application, age and query.
  - C(space) - the estimated size of each new index (row estimate, column widths from C(pg_stats), fillfactor,
    access method), the WAL and temporary sort files the build writes, and the path on the database host where
    each goes (data directory, C(pg_tablespace_location)). Free space itself is measured by the role, which
    runs C(df) on the database host.
  - C(replication) - connected standbys (C(pg_stat_replication)) and their replay lag, inactive replication slots.
  - C(archiving) - WAL archiving health from C(pg_stat_archiver).
  - Nothing is written. The only statement that is not a plain read is the normalization probe of each
    desired index (built on an empty temporary copy of the table in a transaction that is rolled back),
    the same one pg_concurrent_index runs in check mode.
author:
  - ChefCloud Platform Engineering (@chefcloud)
extends_documentation_fragment:
  - chefcloud.pgindex.postgres
  - chefcloud.pgindex.attributes
  - chefcloud.pgindex.attributes.read_only
options:
  indexes:
    description:
      - The indexes to check, as change set entries (the items of the role's C(pgindex_indexes)) with the
        options of M(chefcloud.pgindex.pg_concurrent_index) - C(name), C(table), C(columns), and optionally
        C(schema), C(unique), C(method), C(include), C(where), C(nulls_not_distinct), C(tablespace),
        C(storage_params), C(on_drift), C(on_invalid)...
      - C(verify) is allowed (read by M(chefcloud.pgindex.pg_index_verify)); any other key is an error with a "did you
        mean" hint, read by the same reader as M(chefcloud.pgindex.pg_index_set), before anything connects.
    type: list
    elements: dict
    default: []
  schema:
    description: Schema of the entries of O(indexes) that do not name one.
    type: str
    default: public
  state:
    description:
      - What will follow the preflight - V(present) (build the indexes) or V(absent) (drop them).
      - With V(absent) the C(indexes) and C(space) checks are not needed and not run, C(CREATE) on the
        schema is not required, and a 14.0 to 14.3 server is only a warning. C(tables) still runs - a
        misspelled table is an error, not proof that the index is gone.
    type: str
    choices: [present, absent]
    default: present
  checks:
    description: The groups of checks to run.
    type: list
    elements: str
    choices: [server, privileges, tables, indexes, activity, space, replication, archiving]
    default: [server, privileges, tables, indexes, activity, space, replication, archiving]
  min_version:
    description:
      - Oldest acceptable server version, such as V(13) or V(16.4). Never lower than 13, which the collection needs.
    type: str
    default: '13'
  max_transaction_age:
    description:
      - A transaction of the database open for longer than this fails the C(activity) checks (PostgreSQL
        duration, such as V(5min), V(30s); a bare number is milliseconds).
    type: str
    default: 5min
  max_idle_in_transaction:
    description:
      - A session idle in transaction for longer than this fails the C(activity) checks; a shorter one is a warning.
    type: str
    default: 1min
  max_replication_lag:
    description: A standby further behind than this in replay (a size, such as V(512MB) or V(1GB)) is a warning.
    type: str
    default: 1GB
  min_free_percent:
    description:
      - Part of each filesystem that must stay free after the build (the runbook's 10%). Reported in RV(space)
        for the role's disk check.
    type: int
    default: 10
  free_margin_percent:
    description:
      - Margin over the estimate the free space must also cover (V(20) means 1.2 times the estimate). Reported
        in RV(space) for the role's disk check.
    type: int
    default: 20
  data_directory:
    description:
      - Data directory of the server on the database host. Read from the server by default, which only
        superusers and members of C(pg_read_all_settings) may do; set it for other roles.
    type: str
  tablespace_paths:
    description:
      - Path on the database host of some tablespaces, by name, instead of C(pg_tablespace_location).
    type: dict
    default: {}
  on_drift:
    description:
      - What the deploy will do with an index of the same name and another definition, as
        M(chefcloud.pgindex.pg_concurrent_index) O(chefcloud.pgindex.pg_concurrent_index#module:on_drift) -
        V(fail) fails the C(indexes) check; V(replace) and V(ignore) warn.
      - For the entries of O(indexes) without their own C(on_drift).
    type: str
    choices: [fail, replace, ignore]
    default: fail
  on_invalid:
    description:
      - What the deploy will do with an INVALID index, as pg_concurrent_index
        O(chefcloud.pgindex.pg_concurrent_index#module:on_invalid) - V(rebuild) warns, V(fail) fails.
      - For the entries of O(indexes) without their own C(on_invalid).
    type: str
    choices: [rebuild, fail]
    default: rebuild
  lock_timeout:
    description:
      - C(lock_timeout) of the preflight session. Bounds every read that waits for a table lock (sizes,
        the normalization probe), so a locked table cannot hang the preflight.
    type: str
    default: 5s
notes:
  - Supports C(check_mode); the module never changes anything, in check mode or not.
  - Sessions' queries are cut to 200 characters and password literals in them are masked; the archive command
    is never shown.
seealso:
  - name: Preflight checks
    description: What each check means and what to do about it (docs/preflight.md in the collection).
    link: https://github.com/chefcloud/pgindex/blob/main/docs/preflight.md
  - module: chefcloud.pgindex.pg_concurrent_index
"""

EXAMPLES = r"""
- name: Is it safe to build change set 001 now?
  chefcloud.pgindex.pg_preflight:
    db: chefcloud_prod
    indexes:
      - name: idx_payments_org_status_created
        table: payments
        columns: [org_id, status, created_at]
      - name: idx_fr_overview_org_period
        table: franchise_overview
        columns: [org_id, period]
  register: preflight

- name: Only what matters before dropping indexes, with a stricter transaction age
  chefcloud.pgindex.pg_preflight:
    indexes: "{{ pgindex_indexes }}"
    state: absent
    checks: [server, privileges, activity]
    max_transaction_age: 1min

- name: A deploying role that cannot read data_directory
  chefcloud.pgindex.pg_preflight:
    login_user: deployer
    indexes: "{{ pgindex_indexes }}"
    data_directory: /var/lib/postgresql/16/main
    tablespace_paths:
      fast_ssd: /mnt/ssd/pgdata
"""

RETURN = r"""
status:
  description: The worst status of all checks.
  returned: always
  type: str
  choices: [pass, warn, fail]
  sample: warn
counts:
  description: Number of checks of each status.
  returned: always
  type: dict
  sample: {pass: 17, warn: 1, fail: 0}
failed_checks:
  description: Names of the checks with status C(fail).
  returned: always
  type: list
  elements: str
  sample: [locks]
checks:
  description:
    - Every check run, in order. C(name) is the check (C(version), C(recovery), C(session), C(session_settings),
      C(privileges), C(tables), C(index <schema.name>), C(old_transactions), C(idle_in_transaction),
      C(prepared_transactions), C(locks), C(vacuum), C(index_builds), C(space), C(replication), C(archiving)).
    - C(data) holds what the check found (sessions with pid, user, application_name, ages and query; sizes in
      bytes; definitions...).
  returned: always
  type: list
  elements: dict
  sample:
    - name: locks
      status: fail
      message: >-
        pid 4242 (user alice, application psql, idle in transaction, transaction open 12.5 s) holds
        SHARE ROW EXCLUSIVE on public.payments running: LOCK TABLE payments IN SHARE ROW EXCLUSIVE MODE. ...
      data: {locks: [{pid: 4242, mode: ShareRowExclusiveLock, granted: true, table: public.payments}]}
skipped_checks:
  description: Groups of checks not run, with the reason (not selected, not needed for state=absent, standby).
  returned: always
  type: list
  elements: dict
  sample: [{group: space, reason: not selected (checks)}]
server:
  description: Version, version_num, in_recovery, database and user of the session.
  returned: always
  type: dict
  sample: {version: '18.1', version_num: 180001, in_recovery: false, database: chefcloud_prod, user: deployer}
space:
  description:
    - The space estimate, for the role's disk check (filter P(chefcloud.pgindex.preflight_disk_check#filter)).
    - Also C(estimated) (false when the space checks did not run), C(total_bytes), C(wal_bytes), C(temp_bytes),
      C(min_free_percent) and C(free_margin_percent).
  returned: always
  type: dict
  contains:
    indexes:
      description:
        - Each index to build with its C(estimated_bytes), C(estimated_rows), C(key_width), C(fillfactor),
          C(tablespace) and C(path).
      type: list
      elements: dict
      returned: always
    locations:
      description:
        - Each path on the database host that receives data (C(path) null when unknown, with C(unknown_reason)),
          with C(index_bytes), C(wal_bytes), C(temp_bytes) and C(required_bytes).
      type: list
      elements: dict
      returned: always
msg:
  description: A summary - the overall status and every check that did not pass.
  returned: always
  type: str
"""

from ansible_collections.chefcloud.pgindex.plugins.module_utils.module import PgIndexModule
from ansible_collections.chefcloud.pgindex.plugins.module_utils.preflight import PREFLIGHT_ARGUMENT_SPEC, run_preflight

ARGUMENT_SPEC = PREFLIGHT_ARGUMENT_SPEC


def run(module):
    options = dict((name, module.params[name]) for name in ARGUMENT_SPEC if name != 'indexes')
    return run_preflight(module.connect, module.params['indexes'], options)


def main():
    PgIndexModule('pg_preflight', ARGUMENT_SPEC).run(run)


if __name__ == '__main__':
    main()

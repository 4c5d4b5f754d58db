#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ChefCloud Platform Engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: pg_index_progress
short_description: Report the progress of index builds running on PostgreSQL tables
version_added: 1.0.0
description:
  - Reads C(pg_stat_progress_create_index) for the builds running on the given tables (every table of the
    database when none is given) and returns, per build, its phase, the blocks, tuples or lockers done, the
    percent of the phase, how long it has run, and the lock it is waiting for, with a one-line summary.
  - A build waiting for a lock or for older snapshots names its blockers (pid, user, state, transaction age).
  - Read only on the database. The action plugin M(chefcloud.pgindex.pg_index_set) calls it every poll while its
    builds run in the background (with O(job), the poll is also the job's heartbeat), so a long build is never
    silent.
author:
  - ChefCloud Platform Engineering (@chefcloud)
extends_documentation_fragment:
  - chefcloud.pgindex.postgres
  - chefcloud.pgindex.attributes
  - chefcloud.pgindex.attributes.read_only
options:
  tables:
    description:
      - Tables to report on, as C(table) or C(schema.table) (schema V(public) by default), or dictionaries
        with C(table) and optionally C(schema) (the items of a change set work as they are).
    type: list
    elements: raw
    default: []
  indexes:
    description:
      - Change-set items (C(name), C(table), optionally C(schema)) whose catalog state and estimated build
        duration to return in RV(states).
    type: list
    elements: dict
    default: []
  job:
    description:
      - The background pg_index_set job to report on (set by the M(chefcloud.pgindex.pg_index_set) action plugin).
      - Each call touches the job's heartbeat file; a job that gets no heartbeat for its
        O(chefcloud.pgindex.pg_index_set#module:heartbeat_timeout) cancels its builds.
    type: dict
    suboptions:
      jid:
        description: The async job id.
        type: str
        required: true
      async_dir:
        description: The async directory on this host (where the job's files are).
        type: str
        required: true
      token:
        description: The job's token (names its control files).
        type: str
        required: true
      cancel:
        description: Ask the job to cancel its builds.
        type: bool
        default: false
      cleanup:
        description: Remove the job's control files.
        type: bool
        default: false
      cancel_orphans:
        description: Backend pids of a dead job - cancel the builds it left running in the server and wait up to
          10 s for them to end.
        type: list
        elements: int
        default: []
notes:
  - Supports C(check_mode); it changes nothing in any mode.
"""

EXAMPLES = r"""
- name: Show the builds running on the change set's tables
  chefcloud.pgindex.pg_index_progress:
    tables: "{{ pgindex_indexes }}"
  register: progress

- name: Print one line per build
  ansible.builtin.debug:
    msg: "{{ progress.builds | map(attribute='line') | list }}"
"""

RETURN = r"""
server_version_num:
  description: C(server_version_num) of the server (the role chooses its default parallelism from it).
  returned: always
  type: int
  sample: 180001
builds:
  description: One entry per running build.
  returned: always
  type: list
  elements: dict
  contains:
    pid:
      description: Backend running the build.
      type: int
    index:
      description: Name of the index being built (empty before it exists in the catalog).
      type: str
    table:
      description: Table of the index.
      type: str
    schema:
      description: Schema of the table.
      type: str
    phase:
      description: Phase, as C(pg_stat_progress_create_index) names it.
      type: str
      sample: building index - scanning table
    percent:
      description: Percent done of the current phase, or null when the phase has no counter.
      type: float
      sample: 42.5
    elapsed_s:
      description: Seconds since the statement started.
      type: float
    waiting_for:
      description: Lock type the build waits for (C(relation) - the table, C(virtualxid) or C(transactionid) - older transactions), or null.
      type: str
    blockers:
      description: The sessions the build waits for (pid, user, state, xact_age_s, application_name).
      type: list
      elements: dict
    line:
      description: A one-line summary.
      type: str
      sample: 'idx_payments_org_status_created on public.payments - building index - scanning table, 42.5% (blocks 4250/10000), 12.3 s'
  sample: []
states:
  description: With O(indexes), per item its catalog state (C(exists), C(valid)), C(drop_sql) of an INVALID index,
    C(table_bytes) and C(estimate_s), the estimated build duration.
  returned: when O(indexes) is given
  type: list
  elements: dict
job:
  description: With O(job), C(finished) (the job wrote its result), C(alive) (its process runs; null before it
    started) and C(state) (pid, lanes, indexes done).
  returned: when O(job) is given
  type: dict
progress_error:
  description: Why the progress could not be read (the job's status is still returned).
  returned: when the database could not be read and O(job) is given
  type: str
"""

from ansible_collections.chefcloud.pgindex.plugins.module_utils import jobcontrol
from ansible_collections.chefcloud.pgindex.plugins.module_utils.connection import psycopg2
from ansible_collections.chefcloud.pgindex.plugins.module_utils.errors import PgIndexError, SpecError
from ansible_collections.chefcloud.pgindex.plugins.module_utils.module import PgIndexModule
from ansible_collections.chefcloud.pgindex.plugins.module_utils.progress import build_progress, index_states

ARGUMENT_SPEC = dict(
    tables=dict(type='list', elements='raw', default=[]),
    indexes=dict(type='list', elements='dict', default=[]),
    job=dict(type='dict', options=dict(
        jid=dict(type='str', required=True),
        async_dir=dict(type='str', required=True),
        token=dict(type='str', required=True, no_log=False),
        cancel=dict(type='bool', default=False),
        cleanup=dict(type='bool', default=False),
        cancel_orphans=dict(type='list', elements='int', default=[]),
    )),
)


def table_names(items):
    """(schema, table) pairs from strings ('t', 's.t') or dicts ({table, schema})."""
    names = []
    for item in items:
        if isinstance(item, dict) and item.get('table'):
            names.append((item.get('schema') or 'public', item['table']))
        elif isinstance(item, str) and item:
            schema, dot, table = item.partition('.')
            names.append((schema, table) if dot else ('public', item))
        else:
            raise SpecError('tables: each item must be a table name or a dict with table, got %r' % (item,))
    return sorted(set(names))


def run(module):
    params = module.params
    result = dict(changed=False, builds=[])
    job = params['job']
    if job:
        # the job's status (and the heartbeat) first: it must not depend on the database answering
        result['job'] = jobcontrol.job_status(job['async_dir'], job['jid'], job['token'], cancel=job['cancel'],
                                              cleanup=job['cleanup'])
    tables = table_names(params['tables'])
    try:
        conn = module.connect()
        result['builds'] = build_progress(conn, tables)
        result['server_version_num'] = conn.server_version
        if job and job['cancel_orphans']:
            # the job died: its builds go on in the server without a client; stop them before looking
            backends = job['cancel_orphans']
            result['job']['orphans_cancelled'] = [b['pid'] for b in result['builds'] if b['pid'] in backends]
            jobcontrol.cancel_builds(conn, backends, wait=10)
            result['builds'] = build_progress(conn, tables)
        if params['indexes']:
            result['states'] = index_states(conn, params['indexes'])
    except (PgIndexError, psycopg2.Error) as exc:
        if not job:
            raise
        result['progress_error'] = getattr(exc, 'msg', None) or ' '.join(str(exc).split())
    return result


def main():
    PgIndexModule('pg_index_progress', ARGUMENT_SPEC).run(run)


if __name__ == '__main__':
    main()

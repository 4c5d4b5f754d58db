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
  - Read only. The role C(chefcloud.pgindex.pgindex) polls it every few seconds while its builds run in the
    background, so a long build is never silent.
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
    line:
      description: A one-line summary.
      type: str
      sample: 'idx_payments_org_status_created on public.payments - building index - scanning table, 42.5% (blocks 4250/10000), 12.3 s'
  sample: []
"""

from ansible_collections.chefcloud.pgindex.plugins.module_utils.errors import SpecError
from ansible_collections.chefcloud.pgindex.plugins.module_utils.module import PgIndexModule
from ansible_collections.chefcloud.pgindex.plugins.module_utils.progress import build_progress

ARGUMENT_SPEC = dict(
    tables=dict(type='list', elements='raw', default=[]),
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
    conn = module.connect()
    builds = build_progress(conn, table_names(module.params['tables']))
    return dict(changed=False, builds=builds, server_version_num=conn.server_version)


def main():
    PgIndexModule('pg_index_progress', ARGUMENT_SPEC).run(run)


if __name__ == '__main__':
    main()

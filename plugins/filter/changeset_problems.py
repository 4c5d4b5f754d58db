# -*- coding: utf-8 -*-
# Copyright: ChefCloud Platform Engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: changeset_problems
short_description: Read a change set with the modules' own reader and list what is wrong with it
version_added: 1.0.0
author:
  - ChefCloud Platform Engineering (@chefcloud)
description:
  - Reads the change set (the role's O(_input), C(pgindex_indexes)) exactly as M(chefcloud.pgindex.pg_index_set),
    M(chefcloud.pgindex.pg_preflight) and M(chefcloud.pgindex.pg_index_verify) read it (module_utils C(changeset)),
    on the controller, before anything connects to a database; it also runs in check mode.
  - >-
    Returns an empty list for a valid change set, else a list with the one message the modules would fail with,
    for example C(index idx_x: unknown key 'uniqe' (did you mean 'unique'?)),
    C(index idx_x: key 'unique' must be a boolean (true or false), got 'maybe') or
    C(indexes lists index public.idx_dup twice (entries 1 and 2)).
  - Index expressions and predicates are also proven single by the PostgreSQL parser when the Python package
    C(pglast) is installed on the controller; otherwise the modules prove them on the module host, before any
    statement is sent.
options:
  _input:
    description: The change set's entries.
    type: list
    elements: dict
    required: true
  defaults:
    description: Index options that apply to every entry that does not set them (the role's C(pgindex_lock_timeout)...).
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: Refuse a change set with a misspelled key, before any connection
  ansible.builtin.assert:
    that: problems | length == 0
    fail_msg: "{{ problems | join('; ') }}"
  vars:
    problems: "{{ pgindex_indexes | chefcloud.pgindex.changeset_problems({'lock_timeout': '10s'}) }}"
"""

RETURN = r"""
_value:
  description: The problems found, at most one (the first); empty when the change set is valid.
  type: list
  elements: str
"""

from ansible.module_utils.six.moves.collections_abc import Mapping


def _plain(value):
    """The same data as plain dicts, lists and strs. Ansible 2.19 hands filters lazy containers whose deepcopy
    (the argument spec validator copies its input) copies the templating context too: a second per entry."""
    if isinstance(value, Mapping):
        return dict((_plain(k), _plain(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


def changeset_problems(items, defaults=None):
    # Imported here, not at the top: Ansible loads every filter file of the collection to find one filter,
    # in every task's worker process, so a filter file's imports are paid by each task that uses any filter.
    from ansible_collections.chefcloud.pgindex.plugins.module_utils import changeset
    from ansible_collections.chefcloud.pgindex.plugins.module_utils.connection import HAS_PSYCOPG2
    from ansible_collections.chefcloud.pgindex.plugins.module_utils.sql_expression import HAS_PGLAST
    return changeset.changeset_problems(_plain(items), _plain(defaults), prove_sql=HAS_PGLAST and HAS_PSYCOPG2)


class FilterModule(object):
    def filters(self):
        return {'changeset_problems': changeset_problems}

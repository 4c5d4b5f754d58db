# -*- coding: utf-8 -*-
# Copyright: ChefCloud Platform Engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: build_waves
short_description: Split a change set into waves of indexes that may build at the same time
version_added: 0.1.0
author:
  - ChefCloud Platform Engineering (@chefcloud)
description:
  - Indexes on one table build one after another; indexes on different tables may build together, at most
    O(parallelism) at a time. Returns a list of waves (lists of index dicts), run one after the other.
  - With O(parallelism=0), the parallelism comes from O(server_version_num) - 2 on PostgreSQL 14 and newer
    (a concurrent build of a plain index no longer waits for the others), 1 before.
options:
  _input:
    description: The change set's indexes (dicts with at least C(table), optionally C(schema)).
    type: list
    elements: dict
    required: true
  parallelism:
    description: Most indexes building at once; V(0) to choose from the server version.
    type: int
    default: 0
  server_version_num:
    description: C(server_version_num) of the server, used when O(parallelism=0).
    type: int
    default: 0
  default_schema:
    description: Schema of indexes that do not name one.
    type: str
    default: public
"""

EXAMPLES = r"""
- name: Three waves for two tables with two indexes each and one with one, two at a time
  ansible.builtin.debug:
    msg: "{{ pgindex_indexes | chefcloud.pgindex.build_waves(parallelism=2) }}"
"""

RETURN = r"""
_value:
  description: Waves of index dicts; the indexes of a wave are on distinct tables.
  type: list
  elements: list
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.chefcloud.pgindex.plugins.module_utils.schedule import build_waves, default_parallelism


def build_waves_filter(indexes, parallelism=0, server_version_num=0, default_schema='public'):
    if not isinstance(indexes, list) or not all(isinstance(i, dict) and i.get('table') for i in indexes):
        raise AnsibleFilterError('build_waves expects a list of dicts, each with a table')
    try:
        parallelism = int(parallelism or 0)
    except (TypeError, ValueError):
        raise AnsibleFilterError('build_waves: parallelism must be an integer, got %r' % (parallelism,))
    if parallelism <= 0:
        parallelism = default_parallelism(int(server_version_num or 0))
    return build_waves(indexes, parallelism, default_schema)


class FilterModule(object):
    def filters(self):
        return {'build_waves': build_waves_filter}

# -*- coding: utf-8 -*-
# Copyright: ChefCloud Platform Engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: preflight_disk_check
short_description: Judge df output from the database host against the space pg_preflight estimated
version_added: 1.0.0
author:
  - ChefCloud Platform Engineering (@chefcloud)
description:
  - Takes the registered results of C(df -P -B1 <path>) run on the database host for each location of
    RV(chefcloud.pgindex.pg_preflight#module:space.locations), and returns the C(disk) preflight check.
  - Locations on the same filesystem are added up. A filesystem passes when, after the build, the free space
    stays at least C(min_free_percent) of its size and at least C(free_margin_percent) of what the build writes
    there (both from O(space)). A location whose path is unknown, or whose C(df) failed, fails the check.
options:
  _input:
    description:
      - Either the registered result of the role's one measuring command on the database host (a dict, whose
        C(stdout) holds the CPU count on its first line, then for each path a C(@@pgindex-df <path>) line, the output of
        C(df -P -B1 -- <path>) and a C(@@pgindex-rc <rc>) line; the role's C(preflight.yml) runs it),
      - or the C(results) of a looped C(ansible.builtin.command) task running C(df -P -B1) over the locations
        (a list; each result's C(item) is a location, or its path).
    type: raw
    required: true
  space:
    description: RV(chefcloud.pgindex.pg_preflight#module:space) of the preflight.
    type: dict
    required: true
  host:
    description: Name of the database host, for the messages.
    type: str
    default: the database host
"""

EXAMPLES = r"""
- name: Free space on the database host
  ansible.builtin.command:
    argv: [df, -P, -B1, "{{ item.path }}"]
  loop: "{{ preflight.space.locations | selectattr('path') | list }}"
  register: df
  changed_when: false
  failed_when: false
  check_mode: false

- name: Judge it
  ansible.builtin.debug:
    msg: "{{ df.results | chefcloud.pgindex.preflight_disk_check(space=preflight.space, host=inventory_hostname) }}"
"""

RETURN = r"""
_value:
  description:
    - The C(disk) check - C(name), C(status) (V(pass) or V(fail)), C(message) and C(data).
    - C(data.filesystems) lists each filesystem with C(size_bytes), C(available_bytes), C(required_bytes),
      C(required_with_margin_bytes), C(free_after_bytes), C(free_after_percent), C(ok) and C(reasons).
  type: dict
"""


def preflight_disk_check(results, space, host='the database host'):
    # Imported on use: see changeset_problems.py.
    from ansible_collections.chefcloud.pgindex.plugins.module_utils.preflight_disk import check_disk, split_host_measure
    if isinstance(results, dict):
        # the role's one measuring command (roles/pgindex/vars/main.yml: pgindex_host_measure_script)
        if results.get('skipped') or 'stdout' not in results:
            reports = []
        else:
            reports = split_host_measure(results.get('stdout'))[1]
        return check_disk(space or {}, reports, host)
    reports = []
    for result in results or []:
        if not isinstance(result, dict) or result.get('skipped'):
            continue
        item = result.get('item')
        reports.append(dict(path=item.get('path') if isinstance(item, dict) else item, rc=result.get('rc'),
                            stdout=result.get('stdout'), stderr=result.get('stderr') or result.get('msg')))
    return check_disk(space or {}, reports, host)


class FilterModule(object):
    def filters(self):
        return {'preflight_disk_check': preflight_disk_check}

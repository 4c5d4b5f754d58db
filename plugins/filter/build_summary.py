# -*- coding: utf-8 -*-
# Copyright: ChefCloud Platform Engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: build_summary
short_description: The lines that say what a change set's build (or drop) did, index by index
version_added: 1.0.0
author:
  - ChefCloud Platform Engineering (@chefcloud)
description:
  - Turns the result of M(chefcloud.pgindex.pg_index_set) into the lines the role prints after the build - a title,
    then per index its outcome (action, validity, size, seconds, or C(FAILED) with the reason) and the SQL it ran
    (or would run, in check mode; for a failed index the statements it sent, cleanups included), then every INVALID
    index left behind with the statement that drops it.
  - An undefined or empty result (the build never started, or its job died) gives a line that says so.
options:
  _input:
    description: The result of M(chefcloud.pgindex.pg_index_set) (the fact C(pgindex_build_result)).
    type: dict
    required: true
  title:
    description: The first line, for example C(change set 001 on pg1).
    type: str
    required: true
  check_mode:
    description: Whether this was a dry run (the SQL is what would run).
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Show what was done
  ansible.builtin.debug:
    msg: "{{ pgindex_build_result | default({}) | chefcloud.pgindex.build_summary('change set 001 on ' ~ inventory_hostname,
             check_mode=ansible_check_mode) }}"
"""

RETURN = r"""
_value:
  description: The lines, one per string.
  type: list
  elements: str
"""

from ansible.module_utils.common.text.converters import to_text


def _size(size_bytes):
    size = float(size_bytes)
    for unit in ('bytes', 'KB', 'MB', 'GB', 'TB'):
        if size < 1024 or unit == 'TB':
            return ('%d %s' % (size, unit)) if unit == 'bytes' else ('%.2f %s' % (size, unit))
        size /= 1024.0
    return '%d bytes' % size_bytes  # pragma: no cover


def index_line(result, check_mode=False):
    """One index's outcome on one line."""
    name = to_text(result.get('name'))
    if result.get('failed'):
        return '%s: FAILED: %s' % (name, to_text(result.get('msg') or result.get('error') or ''))
    line = '%s on %s.%s: %s' % (name, result.get('schema'), result.get('table'), result.get('action'))
    if result.get('action') == 'not started':
        return '%s: %s' % (name, to_text(result.get('msg') or 'not started'))
    if result.get('valid') is not None:
        line += ', valid' if result['valid'] else ', INVALID'
    if result.get('size_bytes') is not None:
        line += ', ' + _size(result['size_bytes'])
    if result.get('changed') and not check_mode:
        line += ', %s s' % result.get('duration_s')
    return line


def build_summary(result, title, check_mode=False):
    result = result if isinstance(result, dict) else {}
    verb = 'would run' if check_mode else 'ran'
    lines = [to_text(title) + (' (check mode: nothing changed)' if check_mode else '')]
    indexes = result.get('indexes')
    if not indexes:
        lines.append('no index result: %s' % to_text(result.get('msg') or 'the build did not return any result'))
        return lines
    for index in indexes:
        lines.append(index_line(index, check_mode))
        if index.get('action') == 'not started':
            continue
        for query in index.get('queries') or []:
            lines.append('    %s: %s' % (verb, to_text(query)))
    for item in result.get('leftovers') or []:
        lines.append('LEFT INVALID: %s.%s - run %s' % (item.get('schema'), item.get('index'), item.get('drop_sql')))
    return lines


class FilterModule(object):
    def filters(self):
        return {'build_summary': build_summary}

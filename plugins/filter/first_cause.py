# -*- coding: utf-8 -*-
# Copyright: ChefCloud Platform Engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: first_cause
short_description: The first real cause of a failed deploy or rollback, or an empty string
version_added: 1.0.0
author:
  - ChefCloud Platform Engineering (@chefcloud)
description:
  - The role runs its steps in a block and always summarizes and reports, then fails with this message so that the
    play's last message is the cause, not a consequence.
  - In this order - a step that failed (O(failure), for example a preflight check), then the build or drop
    (M(chefcloud.pgindex.pg_index_set)'s C(msg) when any index failed or it returned no index result), then the
    verification (its C(msg) when it did not pass). An empty string when all went well.
  - The build's own C(failed) flag is not trusted (the role registers it with C(failed_when) false); the indexes'
    C(failed) flags are.
options:
  _input:
    description: The result of M(chefcloud.pgindex.pg_index_set) (C(pgindex_build_result)), or an empty dict.
    type: dict
    required: true
  failure:
    description: The message of a step that failed before or around the build (C(ansible_failed_result.msg)).
    type: str
    default: ''
  verification:
    description: The result of M(chefcloud.pgindex.pg_index_verify), or an empty dict.
    type: dict
    default: {}
  build_expected:
    description: Whether a build result must exist (an empty O(_input) is then a failure).
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Fail with the first real cause
  vars:
    pgindex_cause: >-
      {{ pgindex_build_result | default({}) | chefcloud.pgindex.first_cause(failure=pgindex_failure | default(''),
         verification=pgindex_verification | default({})) }}
  ansible.builtin.fail:
    msg: "{{ pgindex_cause }}"
  when: pgindex_cause | length > 0
"""

RETURN = r"""
_value:
  description: The message, or an empty string.
  type: str
"""

from ansible.module_utils.common.text.converters import to_text


def build_failure(result, build_expected=True):
    """The build's message when it failed, else ''."""
    result = result if isinstance(result, dict) else {}
    indexes = result.get('indexes')
    if not indexes:
        if not result:
            return 'the build did not return a result' if build_expected else ''
        if result.get('msg') and (result.get('failed') or 'indexes' not in result):
            return to_text(result['msg'])
        if result.get('failed'):
            return 'the build failed without a message: %s' % to_text(result.get('stderr') or result)[:500]
        return ''
    failed = [index for index in indexes if index.get('failed')]
    if not failed:
        return ''
    message = to_text(result.get('msg') or '')
    if not message or not any(index.get('name') and index['name'] in message for index in failed):
        message = '; '.join('%s: %s' % (index.get('name'), to_text(index.get('msg'))) for index in failed)
    return message


def first_cause(result, failure='', verification=None, build_expected=True):
    if failure:
        return to_text(failure)
    cause = build_failure(result, build_expected)
    if cause:
        return cause
    verification = verification if isinstance(verification, dict) else {}
    if verification and verification.get('ok') is False:
        return to_text(verification.get('msg') or 'verification failed')
    return ''


class FilterModule(object):
    def filters(self):
        return {'first_cause': first_cause}

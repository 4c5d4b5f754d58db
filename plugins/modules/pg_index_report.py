#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ChefCloud Platform Engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: pg_index_report
short_description: Write the run record of a chefcloud.pgindex run on the controller (JSON and Markdown)
version_added: 1.1.0
description:
  - Writes the report that the P(chefcloud.pgindex.pgindex_report#filter) filter assembled, as JSON and, through a
    Jinja2 template (the role's C(verify_report.md.j2) by default), as Markdown, to every stem of O(paths)
    (C(<stem>.json) and C(<stem>.md)).
  - Runs entirely in its action plugin, on the controller, in one task (no module is transferred or run), so the
    report costs no module round trip. Each file is written to a temporary file in its directory and renamed into
    place; missing directories are created.
  - Sets the report as the fact O(fact) (C(pgindex_report) by default), which later steps and templates read.
  - Report files are output, not a change to the database hosts - the task never reports C(changed), and it writes
    in check mode too (the dry run's record is what the reviewer approves).
author:
  - ChefCloud Platform Engineering (@chefcloud)
extends_documentation_fragment:
  - chefcloud.pgindex.attributes
attributes:
  action:
    support: full
    description: Indicates if an action plugin is used.
    details:
      - The action plugin does all the work on the controller.
  async:
    support: none
    description: Supports being used with the C(async) keyword.
  check_mode:
    support: full
    details:
      - Writes the report files in check mode too - they record the dry run; no database host is touched.
  diff_mode:
    support: none
    details:
      - Report files are output, not a change, so there is no diff.
  platform:
    support: full
    platforms: posix
    details:
      - Writes on the controller, whatever the task's host.
options:
  report:
    description: The report, the C(report) of the P(chefcloud.pgindex.pgindex_report#filter) filter's output.
    type: dict
    required: true
  paths:
    description:
      - The file stems to write, on the controller; each gets C(.json) and, with O(template), C(.md).
    type: list
    elements: path
    required: true
  template:
    description:
      - The Markdown template, looked up like the template module's C(src) (the role's C(templates/) first). It
        reads the report as C(pgindex_report). An empty value writes no Markdown.
    type: str
    default: verify_report.md.j2
  mode:
    description: The files' permissions, octal.
    type: str
    default: '0644'
  fact:
    description: The fact the report is set as; an empty value sets none.
    type: str
    default: pgindex_report
"""

EXAMPLES = r"""
- name: Write the report files (this run's and latest), on the controller
  chefcloud.pgindex.pg_index_report:
    report: "{{ pgindex_report_out.report }}"
    paths:
      - "{{ pgindex_report_out.report.report_file }}"
      - "{{ pgindex_report_out.report.latest_file }}"
"""

RETURN = r"""
files:
  description: The files written, in order.
  returned: always
  type: list
  elements: str
  sample: [reports/001_franchise_indexes.db1.20261202T060000Z.json, reports/001_franchise_indexes.db1.20261202T060000Z.md]
ansible_facts:
  description: The report as the fact O(fact).
  returned: success, when O(fact) is set
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

ARGUMENT_SPEC = dict(
    report=dict(type='dict', required=True),
    paths=dict(type='list', elements='path', required=True),
    template=dict(type='str', default='verify_report.md.j2'),
    mode=dict(type='str', default='0644'),
    fact=dict(type='str', default='pgindex_report'),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    module.fail_json(msg='chefcloud.pgindex.pg_index_report runs in its action plugin on the controller; '
                         'it reached the module, so the action plugin was not found (is the collection installed?)')


if __name__ == '__main__':
    main()

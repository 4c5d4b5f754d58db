# -*- coding: utf-8 -*-
# Copyright: ChefCloud Platform Engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: changeset_path
short_description: Find a change set file the way a user means it
version_added: 1.0.0
author:
  - ChefCloud Platform Engineering (@chefcloud)
description:
  - Returns the path of a change set file. An absolute path is kept. A relative path is looked up, in this
    order, from the current directory (C(-e pgindex_changeset_file=changesets/001.yml) from the repository),
    from the playbook's directory (C(../changesets/001.yml)), and from the collection root (the playbook
    directory's parent, when the playbooks run from an installed collection).
  - Fails with the places it looked when none holds the file, instead of letting Ansible skip a missing
    vars file silently.
options:
  _input:
    description: The change set path as given.
    type: path
    required: true
  playbook_dir:
    description: The playbook's directory (C(playbook_dir)).
    type: path
    required: true
"""

EXAMPLES = r"""
- name: A play that loads a change set
  hosts: pgindex_databases
  vars_files:
    - "{{ pgindex_changeset_file | default('changesets/001_franchise_indexes.yml') | chefcloud.pgindex.changeset_path(playbook_dir) }}"
  tasks: []
"""

RETURN = r"""
_value:
  description: The absolute path of the change set file.
  type: path
"""

import os

from ansible.errors import AnsibleFilterError


def changeset_path(path, playbook_dir):
    path = str(path)
    if os.path.isabs(path):
        candidates = [path]
    else:
        candidates = [os.path.join(os.getcwd(), path), os.path.join(str(playbook_dir), path),
                      os.path.join(os.path.dirname(str(playbook_dir).rstrip('/')), path)]
    for candidate in candidates:
        if os.path.isfile(candidate):
            return os.path.normpath(candidate)
    raise AnsibleFilterError('change set file %r not found; looked at: %s' % (path, ', '.join(candidates)))


class FilterModule(object):
    def filters(self):
        return {'changeset_path': changeset_path}

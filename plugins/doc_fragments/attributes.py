# -*- coding: utf-8 -*-
# Copyright: ChefCloud Platform Engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The attributes every module of chefcloud.pgindex declares: what the attributes mean, and the platform.
    # Use it with one of CHANGES (modules that run DDL) or READ_ONLY (modules that only read); a module
    # that differs sets its own attributes, which take precedence over the fragment's.
    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    description: Can run in C(check_mode) and return a changed status prediction without modifying the database.
  diff_mode:
    description: Returns details on what has changed (or would change in C(check_mode)) when run with C(--diff).
  platform:
    description: Where the module runs. It runs on the host in C(ansible_python_interpreter) (the bastion or
      localhost), which connects to PostgreSQL with psycopg2; the database host itself needs nothing.
    support: full
    platforms: posix
"""

    # Modules that create or drop indexes.
    CHANGES = r"""
options: {}
attributes:
  check_mode:
    support: full
    details:
      - Observes the catalog and plans every index exactly as a real run would, then runs none of the plan's
        statements; the result lists the statements it would run and the actions it would take.
  diff_mode:
    support: full
    details:
      - The diff shows, per index, the server-normalized definition before (or none) and after (or none).
"""

    # Modules that only read the catalog and the activity views.
    READ_ONLY = r"""
options: {}
attributes:
  check_mode:
    support: full
    details:
      - The module only reads; it runs the same way in check mode.
  diff_mode:
    support: none
    details:
      - The module changes nothing, so there is no diff.
"""

# -*- coding: utf-8 -*-
# Copyright: ChefCloud Platform Engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Base class of every chefcloud.pgindex module.

It owns what all modules share, so each module only declares its own options and calls one
function: the connection options and their checks, the psycopg2 requirement, opening and closing
connections, and turning every expected failure (PgIndexError) into one clear ``fail_json``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.chefcloud.pgindex.plugins.module_utils import connection, sql_expression
from ansible_collections.chefcloud.pgindex.plugins.module_utils.errors import PgIndexError


class PgIndexModule(object):
    """AnsibleModule plus the chefcloud.pgindex connection options and error handling."""

    def __init__(self, name, argument_spec, mutually_exclusive=None, required_if=None,
                 supports_check_mode=True):
        spec = connection.connection_argument_spec()
        spec.update(argument_spec)
        self.name = name
        self.ansible = AnsibleModule(
            argument_spec=spec,
            mutually_exclusive=connection.CONNECTION_MUTUALLY_EXCLUSIVE + list(mutually_exclusive or []),
            required_if=required_if or [],
            supports_check_mode=supports_check_mode,
        )
        self.params = self.ansible.params
        self.check_mode = self.ansible.check_mode
        self._connections = []
        if not connection.HAS_PSYCOPG2:
            self.ansible.fail_json(msg=missing_required_lib('psycopg2'),
                                   exception=str(connection.PSYCOPG2_IMPORT_ERROR))
        if not sql_expression.HAS_PGLAST:
            self.ansible.fail_json(msg=sql_expression.PGLAST_MISSING, exception=sql_expression.PGLAST_IMPORT_ERROR)

    def connect(self):
        """A new autocommit connection, with application_name chefcloud.pgindex/<module>."""
        conn = connection.connect(self.params, 'chefcloud.pgindex/%s' % self.name)
        self._connections.append(conn)
        return conn

    def run(self, work):
        """exit_json(**work(self)), or fail_json for a PgIndexError; connections are always closed."""
        try:
            result = work(self)
        except PgIndexError as exc:
            self._close()
            details = dict(exc.details)
            details.setdefault('changed', False)
            self.ansible.fail_json(msg=exc.msg, **details)
        self._close()
        for warning in result.pop('warnings', []):
            self.ansible.warn(warning)
        self.ansible.exit_json(**result)

    def _close(self):
        for conn in self._connections:
            if not conn.closed:
                conn.close()
        self._connections = []

# -*- coding: utf-8 -*-
# Copyright: ChefCloud Platform Engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Base class of every chefcloud.pgindex module.

It owns what all modules share, so each module only declares its own options and calls one
function: the connection options and their checks, the psycopg2 requirement, opening and closing
connections, and turning every failure into one clear ``fail_json`` (a PgIndexError with its
message and details, anything else as ``ExceptionClass: message``), never a traceback.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.chefcloud.pgindex.plugins.module_utils import connection, sql_expression
from ansible_collections.chefcloud.pgindex.plugins.module_utils.errors import PgIndexError
from ansible_collections.chefcloud.pgindex.plugins.module_utils.session import Session, one_line_error


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
        """A new autocommit connection, with application_name chefcloud.pgindex/<module>.

        Closed when the module ends at the latest; closed ones are forgotten at once, so that a long
        change set does not keep one per finished unit of work.
        """
        self._connections = [c for c in self._connections if not c.closed]
        conn = connection.connect(self.params, self.application_name)
        self._connections.append(conn)
        return conn

    @property
    def application_name(self):
        return 'chefcloud.pgindex/%s' % self.name

    def session(self, settings=None):
        """A session.Session on the module's connection options (use it as a context manager)."""
        return Session(self.params, self.application_name, settings=settings)

    def run(self, work):
        """exit_json(**work(self)), or fail_json with a one-line message for any exception (a
        PgIndexError's own message and details; ``ExceptionClass: message`` for anything else, never a
        traceback); connections are always closed."""
        try:
            result = work(self)
        except PgIndexError as exc:
            self._close()
            details = dict(exc.details)
            details.setdefault('changed', False)
            details.setdefault('error', one_line_error(getattr(exc, 'cause', None) or exc))
            self.ansible.fail_json(msg=exc.msg, **details)
        except Exception as exc:  # anything unexpected is still one clear failure
            self._close()
            self.ansible.fail_json(msg=one_line_error(exc), error=one_line_error(exc), changed=False)
        self._close()
        for warning in result.pop('warnings', []):
            self.ansible.warn(warning)
        self.ansible.exit_json(**result)

    def _close(self):
        for conn in self._connections:
            if not conn.closed:
                conn.close()
        self._connections = []

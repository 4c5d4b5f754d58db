# -*- coding: utf-8 -*-
# Copyright: ChefCloud Platform Engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run a plan under safety settings, and clean up what a failed concurrent build leaves behind.

A CREATE INDEX CONCURRENTLY that fails after its first phase (lock_timeout while waiting for old
transactions, a cancel, a duplicate key...) leaves an INVALID index that costs write overhead and
that ``CREATE INDEX ... IF NOT EXISTS`` would then silently keep.  The executor drops such a
leftover concurrently before it reports the failure.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.chefcloud.pgindex.plugins.module_utils import catalog
from ansible_collections.chefcloud.pgindex.plugins.module_utils.connection import psycopg2
from ansible_collections.chefcloud.pgindex.plugins.module_utils.errors import BuildError, SpecError


def one_line(exc):
    """A psycopg2 error as one line: the server's message, detail and hint."""
    diag = getattr(exc, 'diag', None)
    parts = [getattr(diag, 'message_primary', None) or str(exc)]
    for label, attr in (('DETAIL', 'message_detail'), ('HINT', 'message_hint')):
        value = getattr(diag, attr, None)
        if value:
            parts.append('%s: %s' % (label, value))
    return ' '.join(' '.join(parts).split())


def apply_session_settings(conn, settings):
    """SET each name=value for the session (values are validated by the server)."""
    with conn.cursor() as cur:
        for name, value in settings.items():
            try:
                cur.execute('SELECT set_config(%s, %s, false)', (name, str(value)))
            except psycopg2.Error as exc:
                raise SpecError('invalid value %r for %s: %s' % (value, name, one_line(exc)))


class PlanExecutor(object):
    """Executes a plan's steps in order on ``conn``.

    ``reconnect`` is a callable returning a fresh connection, used to clean up when the build's own
    connection was lost (pg_terminate_backend, network cut).
    """

    def __init__(self, conn, reconnect, spec):
        self.conn = conn
        self.reconnect = reconnect
        self.spec = spec
        self.executed = []
        self.cleaned_up = []

    def run(self, plan):
        for step in plan.steps:
            text = step.statement.as_string(self.conn)
            try:
                with self.conn.cursor() as cur:
                    cur.execute(step.statement)
            except psycopg2.Error as exc:
                reason = one_line(exc)
                cleanup_note = ''
                if step.kind == 'create':
                    cleanup_note = self._clean_up_leftover()
                raise BuildError(
                    '%s failed: %s%s' % (step.description, reason, cleanup_note),
                    sqlstate=exc.pgcode, failed_query=text, queries=list(self.executed),
                    changed=bool(self.executed),
                    cleaned_up=self.cleaned_up)
            self.executed.append(text)
        return self.executed

    def _clean_up_leftover(self):
        """Drop the INVALID index a failed concurrent build left behind, if any; say what was done."""
        conn = self.conn
        try:
            if conn.closed:
                conn = self.conn = self.reconnect()
            leftover = catalog.get_index(conn, self.spec.schema, self.spec.name)
            if leftover is None or leftover.valid or catalog.builds_in_progress(conn, leftover.oid):
                return ''
            statement = self.spec.drop_statement()
            with conn.cursor() as cur:
                cur.execute(statement)
            self.executed.append(statement.as_string(conn))
            self.cleaned_up.append(self.spec.qualified_name)
            return ' The INVALID index the failed build left behind was dropped (DROP INDEX CONCURRENTLY).'
        except (psycopg2.Error, SpecError) as exc:
            return (' The failed build may have left an INVALID index %s that could not be dropped (%s): '
                    'drop it with DROP INDEX CONCURRENTLY before retrying.'
                    % (self.spec.qualified_name, one_line(exc)))


def timed(func, *args, **kwargs):
    """(result, seconds) of func(*args, **kwargs)."""
    start = time.monotonic()
    result = func(*args, **kwargs)
    return result, round(time.monotonic() - start, 3)

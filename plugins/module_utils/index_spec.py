# -*- coding: utf-8 -*-
# Copyright: ChefCloud Platform Engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The desired index: validated names, the statements that build or drop it, and its definition
exactly as PostgreSQL normalizes it.

Names are never pasted into SQL: every identifier goes through psycopg2's sql.Identifier.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.chefcloud.pgindex.plugins.module_utils.errors import SpecError
from ansible_collections.chefcloud.pgindex.plugins.module_utils.connection import psycopg2, sql

# NAMEDATALEN - 1: PostgreSQL silently truncates longer identifiers, so an index named with 64+
# bytes would be created under another name and never be found again by name.
MAX_IDENTIFIER_BYTES = 63


def check_identifier(kind, value):
    """Return value if it is a usable PostgreSQL identifier, else raise SpecError."""
    if not isinstance(value, str) or value == '':
        raise SpecError('%s must be a non-empty string, got %r' % (kind, value))
    if '\x00' in value:
        raise SpecError('%s %r contains a NUL character, which PostgreSQL identifiers cannot hold' % (kind, value))
    size = len(value.encode('utf-8'))
    if size > MAX_IDENTIFIER_BYTES:
        raise SpecError(
            '%s %r is %d bytes long; PostgreSQL identifiers hold at most %d bytes and longer ones are '
            'silently truncated, so the object could never be found by this name again. Use a shorter name.'
            % (kind, value, size, MAX_IDENTIFIER_BYTES))
    return value


class IndexSpec(object):
    """A desired index: schema.name ON schema.table (columns)."""

    def __init__(self, name, table=None, schema='public', columns=None, unique=False):
        self.name = check_identifier('index name', name)
        self.schema = check_identifier('schema', schema)
        self.table = check_identifier('table', table) if table is not None else None
        self.columns = [check_identifier('column', column) for column in (columns or [])]
        self.unique = bool(unique)
        if len(set(self.columns)) != len(self.columns):
            raise SpecError('index %s lists a column twice: %s' % (self.name, ', '.join(self.columns)))

    @classmethod
    def from_params(cls, params):
        return cls(name=params['name'], table=params.get('table'), schema=params.get('schema') or 'public',
                   columns=params.get('columns'), unique=params.get('unique'))

    def require_definition(self):
        """A present index needs a table and at least one column."""
        if not self.table:
            raise SpecError('index %s: table is required when state is present' % self.name)
        if not self.columns:
            raise SpecError('index %s: columns must list at least one column when state is present' % self.name)

    @property
    def qualified_name(self):
        return '%s.%s' % (self.schema, self.name)

    @property
    def qualified_table(self):
        return '%s.%s' % (self.schema, self.table)

    def index_identifier(self):
        return sql.Identifier(self.schema, self.name)

    def table_identifier(self):
        return sql.Identifier(self.schema, self.table)

    def create_statement(self, concurrently=True, on=None):
        """CREATE [UNIQUE] INDEX [CONCURRENTLY] name ON table (columns).

        ``on`` replaces the target table (the normalization probe builds on a temporary copy).
        """
        return sql.SQL('CREATE {unique}INDEX {concurrently}{name} ON {table} ({columns})').format(
            unique=sql.SQL('UNIQUE ' if self.unique else ''),
            concurrently=sql.SQL('CONCURRENTLY ' if concurrently else ''),
            name=sql.Identifier(self.name),
            table=on if on is not None else self.table_identifier(),
            columns=sql.SQL(', ').join(sql.Identifier(column) for column in self.columns),
        )

    def drop_statement(self):
        return sql.SQL('DROP INDEX CONCURRENTLY IF EXISTS {}').format(self.index_identifier())


def _one_line(exc):
    return ' '.join(str(getattr(exc, 'pgerror', None) or exc).split())


def normalized_definition(conn, spec, lock_timeout='5s'):
    """The index definition as PostgreSQL itself would print it (pg_get_indexdef) for the real
    table, computed without touching the real table.

    Inside a transaction that is always rolled back, the index is built on an empty temporary
    ``LIKE`` copy of the table; its pg_get_indexdef is then re-targeted at the real table.  The server
    thereby validates the definition (unknown columns, types without an operator class...) and
    normalizes it, so comparing with an existing index compares what PostgreSQL compares.
    """
    with conn.cursor() as cur:
        cur.execute('BEGIN')
        try:
            cur.execute('SELECT set_config(%s, %s, true)', ('lock_timeout', lock_timeout))
            cur.execute(sql.SQL('CREATE TEMPORARY TABLE {} (LIKE {}) ON COMMIT DROP').format(
                sql.Identifier(spec.table), spec.table_identifier()))
            cur.execute(spec.create_statement(concurrently=False, on=sql.Identifier('pg_temp', spec.table)))
            cur.execute(
                'SELECT pg_get_indexdef(i.indexrelid), quote_ident(n.nspname), quote_ident(t.relname)'
                ' FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid'
                ' JOIN pg_namespace n ON n.oid = t.relnamespace'
                ' WHERE t.relnamespace = pg_my_temp_schema() AND t.relname = %s',
                (spec.table,))
            probe_def, probe_schema, probe_table = cur.fetchone()
            cur.execute('SELECT quote_ident(%s), quote_ident(%s), quote_ident(%s)',
                        (spec.name, spec.schema, spec.table))
            quoted_name, real_schema, real_table = cur.fetchone()
        except psycopg2.Error as exc:
            raise SpecError('index %s is not a valid definition for table %s: %s'
                            % (spec.qualified_name, spec.qualified_table, _one_line(exc)),
                            sqlstate=exc.pgcode)
        finally:
            cur.execute('ROLLBACK')
    head = 'CREATE %sINDEX %s ON ' % ('UNIQUE ' if spec.unique else '', quoted_name)
    # Newer servers print the session's temporary schema as pg_temp, older ones as pg_temp_N.
    for schema in ('pg_temp', probe_schema):
        probe_head = '%s%s.%s ' % (head, schema, probe_table)
        if probe_def.startswith(probe_head):
            return '%s%s.%s %s' % (head, real_schema, real_table, probe_def[len(probe_head):])
    raise SpecError(  # pragma: no cover - pg_get_indexdef has a fixed layout
        'could not normalize index %s: unexpected definition %r' % (spec.qualified_name, probe_def))


def definition_without_name(definition, quoted_name):
    """pg_get_indexdef text with the index name taken out, to find the same index under another name.

    ``quoted_name`` is the name as pg_get_indexdef prints it (quote_ident).
    """
    for head in ('CREATE INDEX ', 'CREATE UNIQUE INDEX '):
        if definition.startswith(head + quoted_name + ' '):
            return head + definition[len(head) + len(quoted_name) + 1:]
    return definition

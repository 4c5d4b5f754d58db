# -*- coding: utf-8 -*-
# Copyright: ChefCloud Platform Engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The desired index: validated names, the statements that build or drop it, and its definition
exactly as PostgreSQL normalizes it.

Names are never pasted into SQL: every identifier goes through psycopg2's sql.Identifier.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import hashlib
import re

from ansible_collections.chefcloud.pgindex.plugins.module_utils.errors import SpecError
from ansible_collections.chefcloud.pgindex.plugins.module_utils.connection import psycopg2, sql
from ansible_collections.chefcloud.pgindex.plugins.module_utils.sql_expression import (
    check_single_expression, prove_index_statement)

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


METHODS = ('btree', 'hash', 'gin', 'gist', 'brin', 'spgist')
ORDERS = ('asc', 'desc')
NULLS = ('first', 'last')
COLUMN_KEYS = ('name', 'expression', 'order', 'nulls', 'opclass', 'collation')
_STORAGE_PARAM = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*$')


def _qualified(kind, value):
    """'name' or 'schema.name' (an operator class or collation) -> sql.Identifier."""
    parts = value.split('.', 1) if isinstance(value, str) else [value]
    return sql.Identifier(*[check_identifier(kind, part) for part in parts])


def _choice(kind, value, choices):
    if value is None:
        return None
    if not isinstance(value, str) or value.lower() not in choices:
        raise SpecError('%s must be one of %s, got %r' % (kind, ', '.join(choices), value))
    return value.lower()


class IndexColumn(object):
    """One key of an index: a column name or an expression, with order, nulls, opclass, collation."""

    def __init__(self, index_name, value, prove_sql=True):
        if isinstance(value, str):
            value = {'name': value}
        if not isinstance(value, dict):
            raise SpecError('index %s: each column must be a column name or a dict, got %r' % (index_name, value))
        unknown = sorted(set(value) - set(COLUMN_KEYS))
        if unknown:
            raise SpecError('index %s: unknown column key(s) %s (allowed: %s)'
                            % (index_name, ', '.join(unknown), ', '.join(COLUMN_KEYS)))
        if (value.get('name') is None) == (value.get('expression') is None):
            raise SpecError('index %s: each column needs exactly one of name or expression, got %r' % (index_name, value))
        self.name = check_identifier('column', value['name']) if value.get('name') is not None else None
        expression = value.get('expression')
        if expression is not None and prove_sql:
            check_single_expression('expression of index %s' % index_name, expression)
        elif expression is not None and (not isinstance(expression, str) or not expression.strip()):
            raise SpecError('expression of index %s must be a non-empty SQL expression' % index_name)
        self.expression = expression
        self.order = _choice('order of a column of index %s' % index_name, value.get('order'), ORDERS)
        self.nulls = _choice('nulls of a column of index %s' % index_name, value.get('nulls'), NULLS)
        self.opclass = _qualified('opclass', value['opclass']) if value.get('opclass') else None
        self.collation = _qualified('collation', value['collation']) if value.get('collation') else None

    @property
    def key(self):
        return self.name if self.name is not None else self.expression

    def composed_key(self):
        """The key alone (with its collation), as in GROUP BY: to count duplicate keys."""
        key = sql.Identifier(self.name) if self.name is not None else sql.SQL('(%s)' % self.expression)
        return sql.SQL('{} COLLATE {}').format(key, self.collation) if self.collation is not None else key

    def composed(self):
        parts = [sql.Identifier(self.name) if self.name is not None else sql.SQL('(%s)' % self.expression)]
        if self.collation is not None:
            parts.append(sql.SQL('COLLATE {}').format(self.collation))
        if self.opclass is not None:
            parts.append(self.opclass)
        if self.order:
            parts.append(sql.SQL(self.order.upper()))
        if self.nulls:
            parts.append(sql.SQL('NULLS ' + self.nulls.upper()))
        return sql.SQL(' ').join(parts)


def _storage_value(key, value):
    if isinstance(value, bool):
        return 'on' if value else 'off'
    if isinstance(value, (int, float, str)) and str(value) != '':
        return str(value)
    raise SpecError('storage parameter %s must be a number, a boolean or a string, got %r' % (key, value))


class IndexSpec(object):
    """A desired index, validated: every name checked, every expression proven single."""

    def __init__(self, name, table=None, schema='public', columns=None, unique=False, method='btree',
                 include=None, where=None, nulls_not_distinct=False, tablespace=None, storage_params=None,
                 prove_sql=True):
        self.name = check_identifier('index name', name)
        self.schema = check_identifier('schema', schema or 'public')
        self.table = check_identifier('table', table) if table is not None else None
        if columns is not None and not isinstance(columns, list):
            raise SpecError('index %s: columns must be a list, got %r' % (name, columns))
        self.columns = [IndexColumn(name, column, prove_sql) for column in (columns or [])]
        keys = [column.key for column in self.columns]
        if len(set(keys)) != len(keys):
            raise SpecError('index %s lists a column twice: %s' % (self.name, ', '.join(keys)))
        self.unique = bool(unique)
        self.method = _choice('method of index %s' % name, method or 'btree', METHODS)
        self.include = [check_identifier('include column', column) for column in (include or [])]
        if where is not None and prove_sql:
            check_single_expression('where of index %s' % name, where)
        elif where is not None and (not isinstance(where, str) or not where.strip()):
            raise SpecError('where of index %s must be a non-empty SQL expression' % name)
        self.where = where
        self.nulls_not_distinct = bool(nulls_not_distinct)
        if self.nulls_not_distinct and not self.unique:
            raise SpecError('index %s: nulls_not_distinct only applies to unique indexes' % self.name)
        self.tablespace = check_identifier('tablespace', tablespace) if tablespace else None
        if storage_params is not None and not isinstance(storage_params, dict):
            raise SpecError('index %s: storage_params must be a dict, got %r' % (name, storage_params))
        self.storage_params = []
        for key, value in sorted((storage_params or {}).items()):
            if not isinstance(key, str) or not _STORAGE_PARAM.match(key):
                raise SpecError('index %s: invalid storage parameter name %r' % (self.name, key))
            self.storage_params.append((key, _storage_value(key, value)))
        if prove_sql and self.table is not None and self.columns:
            self.prove(render(self.create_statement()))

    OPTIONS = ('name', 'table', 'schema', 'columns', 'unique', 'method', 'include', 'where',
               'nulls_not_distinct', 'tablespace', 'storage_params')

    @classmethod
    def from_params(cls, params, prove_sql=True):
        """From module parameters or a change set entry read by changeset.read_entry (other keys are ignored)."""
        return cls(prove_sql=prove_sql,
                   **dict((key, params.get(key)) for key in cls.OPTIONS if params.get(key) is not None))

    def prove(self, text):
        """``text`` if it is exactly this index's CREATE INDEX (one IndexStmt, every key expression and the
        predicate parsing to themselves), by PostgreSQL's grammar (sql_expression); SpecError otherwise."""
        keys = [('name', column.name) if column.name is not None else ('expression', column.expression)
                for column in self.columns]
        return prove_index_statement('CREATE INDEX of index %s' % self.name, text, keys, self.where,
                                     len(self.include))

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

    def index_identifier(self, name=None):
        return sql.Identifier(self.schema, name or self.name)

    def table_identifier(self):
        return sql.Identifier(self.schema, self.table)

    def create_statement(self, concurrently=True, on=None, only=False, name=None, tablespace=True):
        """CREATE [UNIQUE] INDEX [CONCURRENTLY] name ON [ONLY] table USING method (keys) [INCLUDE (...)]
        [NULLS NOT DISTINCT] [WITH (...)] [TABLESPACE ...] [WHERE (...)].

        ``on`` replaces the target table (the normalization probe builds on a temporary copy, a
        partitioned build on each partition); ``name`` replaces the index name.
        """
        parts = [sql.SQL('CREATE {}INDEX {}{} ON {}{} USING {} ({})').format(
            sql.SQL('UNIQUE ' if self.unique else ''),
            sql.SQL('CONCURRENTLY ' if concurrently else ''),
            sql.Identifier(name or self.name),
            sql.SQL('ONLY ' if only else ''),
            on if on is not None else self.table_identifier(),
            sql.SQL(self.method),
            sql.SQL(', ').join(column.composed() for column in self.columns))]
        if self.include:
            parts.append(sql.SQL('INCLUDE ({})').format(sql.SQL(', ').join(map(sql.Identifier, self.include))))
        if self.nulls_not_distinct:
            parts.append(sql.SQL('NULLS NOT DISTINCT'))
        if self.storage_params:
            parts.append(sql.SQL('WITH ({})').format(sql.SQL(', ').join(
                sql.SQL('{} = {}').format(sql.SQL(key), sql.Literal(value)) for key, value in self.storage_params)))
        if tablespace and self.tablespace:
            parts.append(sql.SQL('TABLESPACE {}').format(sql.Identifier(self.tablespace)))
        if self.where is not None:
            parts.append(sql.SQL('WHERE (%s)' % self.where))
        return sql.SQL(' ').join(parts)

    def for_partition(self, schema, table, name):
        """The same index definition on a partition, under another name (in the partition's schema)."""
        child = copy.copy(self)
        child.schema = check_identifier('schema', schema)
        child.table = check_identifier('table', table)
        child.name = check_identifier('index name', name)
        child.tablespace = self.tablespace
        return child

    def drop_statement(self, name=None, concurrently=True):
        return sql.SQL('DROP INDEX {}IF EXISTS {}').format(
            sql.SQL('CONCURRENTLY ' if concurrently else ''), self.index_identifier(name))


def render(composed):
    """The text of a psycopg2 sql object without a connection, for the parse proof only (what is sent
    is always rendered by psycopg2 itself): identifiers double-quoted, literals single-quoted, as
    PostgreSQL reads them with standard_conforming_strings on."""
    if isinstance(composed, sql.Composed):
        return ''.join(render(part) for part in composed.seq)
    if isinstance(composed, sql.Identifier):
        return '.'.join('"%s"' % part.replace('"', '""') for part in composed.strings)
    if isinstance(composed, sql.Literal):
        return "'%s'" % str(composed.wrapped).replace("'", "''")
    if isinstance(composed, sql.SQL):
        return composed.string
    raise TypeError('cannot render %r' % (composed,))  # pragma: no cover


def _one_line(exc):
    return ' '.join(str(getattr(exc, 'pgerror', None) or exc).split())


def normalized_definition(conn, spec, lock_timeout='5s'):
    """The index definition as PostgreSQL itself would print it (pg_get_indexdef) for the real
    table, computed without touching the real table.

    Inside a transaction that is always rolled back, the index is built on an empty temporary
    ``LIKE`` copy of the table; its pg_get_indexdef is then re-targeted at the real table.  The server
    thereby validates the definition (unknown columns, types without an operator class...) and
    normalizes it, so comparing with an existing index compares what PostgreSQL compares.
    An index on a partitioned table is printed ``ON ONLY``, as PostgreSQL prints it.
    """
    with conn.cursor() as cur:
        cur.execute('BEGIN')
        try:
            cur.execute('SELECT set_config(%s, %s, true)', ('lock_timeout', lock_timeout))
            cur.execute("SELECT set_config('standard_conforming_strings', 'on', true)")
            cur.execute('SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace'
                        ' WHERE n.nspname = %s AND c.relname = %s', (spec.schema, spec.table))
            row = cur.fetchone()
            partitioned = row is not None and row[0] == 'p'
            cur.execute(sql.SQL('CREATE TEMPORARY TABLE {} (LIKE {}) ON COMMIT DROP').format(
                sql.Identifier(spec.table), spec.table_identifier()))
            probe = spec.create_statement(concurrently=False, on=sql.Identifier('pg_temp', spec.table),
                                          tablespace=False).as_string(cur)
            cur.execute(spec.prove(probe))
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
            return '%s%s%s.%s %s' % (head, 'ONLY ' if partitioned else '', real_schema, real_table,
                                     probe_def[len(probe_head):])
    raise SpecError(  # pragma: no cover - pg_get_indexdef has a fixed layout
        'could not normalize index %s: unexpected definition %r' % (spec.qualified_name, probe_def))


def _fit(base, suffix=''):
    """base + suffix in at most 63 bytes; a base that does not fit is cut and tagged with its hash."""
    if len((base + suffix).encode('utf-8')) <= MAX_IDENTIFIER_BYTES:
        return base + suffix
    tag = '_' + hashlib.sha1(base.encode('utf-8')).hexdigest()[:8]
    room = MAX_IDENTIFIER_BYTES - len((tag + suffix).encode('utf-8'))
    return base.encode('utf-8')[:room].decode('utf-8', 'ignore') + tag + suffix


def partition_index_name(index_name, partition_name):
    """Deterministic name of the index built on one partition for the partitioned index
    ``index_name``: <partition>_<index>, cut and hashed to fit 63 bytes."""
    return _fit('%s_%s' % (partition_name, index_name))


def replacement_name(name):
    """Deterministic name of the index that replaces ``name`` (on_drift=replace), at most 63 bytes."""
    suffix = '_pgixnew'
    raw = name.encode('utf-8')[:MAX_IDENTIFIER_BYTES - len(suffix)]
    return raw.decode('utf-8', 'ignore') + suffix


def definition_without_name(definition, quoted_name):
    """pg_get_indexdef text with the index name taken out, to find the same index under another name.

    ``quoted_name`` is the name as pg_get_indexdef prints it (quote_ident).
    """
    for head in ('CREATE INDEX ', 'CREATE UNIQUE INDEX '):
        if definition.startswith(head + quoted_name + ' '):
            return head + definition[len(head) + len(quoted_name) + 1:]
    return definition

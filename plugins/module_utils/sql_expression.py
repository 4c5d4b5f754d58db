# -*- coding: utf-8 -*-
# Copyright: ChefCloud Platform Engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Prove, by PostgreSQL's own grammar, that user SQL is what it claims to be.

Index expressions, WHERE predicates and verification queries are SQL by nature, so they cannot go
through sql.Identifier.  They are proven with pglast (libpg_query: the lexer and parser of
PostgreSQL itself, compiled), not with a lexer of our own that could read a fragment differently
from the server (``a$e'...'`` is a name and a string to PostgreSQL, not an E'' string):

* ``check_single_expression``: the fragment, lexed by PostgreSQL's scanner, holds no comment and no
  ``;``, never closes a parenthesis it did not open, and parses as exactly one expression without a
  subquery.
* ``prove_index_statement``: the whole CREATE INDEX statement the plan sends parses as exactly one
  IndexStmt whose key expressions and predicate are exactly the ones given (same parse trees).
* ``check_one_statement``: any text sent to the server that carries user SQL (the normalization probe,
  the duplicate-key count, each step of a plan) is exactly one statement of the expected kind.

Sessions run with standard_conforming_strings on, as libpg_query's parser assumes.  The server then
parses and normalizes the whole definition on an empty copy of the table (index_spec), inside a
transaction that is rolled back.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import traceback

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.chefcloud.pgindex.plugins.module_utils.errors import SpecError

try:
    # pglast is imported on first use (its parse tree classes take a noticeable part of a second to load, and
    # most module runs and filter calls never parse anything); only its presence is checked here.
    import importlib.util
    HAS_PGLAST = importlib.util.find_spec('pglast') is not None
    PGLAST_IMPORT_ERROR = None if HAS_PGLAST else 'No module named pglast'
except (ImportError, ValueError):  # pragma: no cover - the module host lacks pglast
    HAS_PGLAST = False
    PGLAST_IMPORT_ERROR = traceback.format_exc()

_PGLAST = {}


def _pglast():
    """(pglast.ast, pglast.parser, the sub-link counting visitor class), imported once."""
    if not _PGLAST:
        try:
            from pglast import ast as pg_ast
            from pglast import parser as pg_parser
            from pglast.visitors import Visitor
        except ImportError:  # pragma: no cover - present but broken
            raise SpecError(PGLAST_MISSING, exception=traceback.format_exc())

        class SubLinks(Visitor):
            def __init__(self):
                super(SubLinks, self).__init__()
                self.found = 0

            def visit_SubLink(self, ancestors, node):
                self.found += 1

        _PGLAST.update(ast=pg_ast, parser=pg_parser, sublinks=SubLinks)
    return _PGLAST


PGLAST_MISSING = missing_required_lib(
    'pglast', reason='to prove index expressions, predicates and verification queries with the PostgreSQL parser')

_COMMENTS = ('SQL_COMMENT', 'C_COMMENT')
_AT_INDEX = re.compile(r', at index \d+$')


def require_pglast():
    if not HAS_PGLAST:
        raise SpecError(PGLAST_MISSING, exception=PGLAST_IMPORT_ERROR)


def _error_text(exc):
    return _AT_INDEX.sub('', ' '.join(str(exc).split()))


def _plain(text):
    """An exact str: pglast's C parser refuses str subclasses (such as Ansible's tagged strings)."""
    return text.encode('utf-8', 'surrogatepass').decode('utf-8', 'surrogatepass')


def _tokens(kind, text):
    pg_parser = _pglast()['parser']
    try:
        return pg_parser.scan(_plain(text))
    except pg_parser.ParseError as exc:
        raise SpecError('%s is not valid SQL: %s (%r)' % (kind, _error_text(exc), text))


def _parse(kind, text, shown=None):
    pg_parser = _pglast()['parser']
    try:
        return pg_parser.parse_sql(_plain(text))
    except pg_parser.ParseError as exc:
        raise SpecError('%s is not valid SQL: %s (%r)' % (kind, _error_text(exc), shown if shown is not None else text))


def check_single_expression(kind, text):
    """Return ``text`` if PostgreSQL reads it as one SQL expression, else SpecError naming ``kind``
    (e.g. "where of index idx_x")."""
    if not isinstance(text, str) or not text.strip():
        raise SpecError('%s must be a non-empty SQL expression' % kind)
    if '\x00' in text:
        raise SpecError('%s contains a NUL character' % kind)
    require_pglast()
    depth = 0
    for token in _tokens(kind, text):
        if token.name in _COMMENTS:
            raise SpecError('%s must be a single SQL expression without comments (%r)' % (kind, text))
        if token.name == 'ASCII_59':  # ;
            raise SpecError('%s must be a single SQL expression: ";" is not allowed outside a string literal (%r)'
                            % (kind, text))
        if token.name == 'ASCII_40':  # (
            depth += 1
        elif token.name == 'ASCII_41':  # )
            depth -= 1
            if depth < 0:
                raise SpecError('%s must be a single SQL expression: it closes a parenthesis it did not open (%r)'
                                % (kind, text))
    if depth != 0:
        raise SpecError('%s must be a single SQL expression: unbalanced parentheses (%r)' % (kind, text))
    expression_node(kind, text)
    return text


def expression_node(kind, text):
    """The parse tree of the expression ``text`` (as PostgreSQL parses ``SELECT (text)``)."""
    require_pglast()
    statements = _parse(kind, 'SELECT (%s\n)' % text, text)
    if len(statements) != 1 or not isinstance(statements[0].stmt, _pglast()['ast'].SelectStmt):
        raise SpecError('%s must be a single SQL expression (%r)' % (kind, text))
    select = statements[0].stmt
    extra = [field for field in ('distinctClause', 'intoClause', 'fromClause', 'whereClause', 'groupClause',
                                 'havingClause', 'windowClause', 'valuesLists', 'sortClause', 'limitOffset',
                                 'limitCount', 'lockingClause', 'withClause')
             if getattr(select, field, None)]
    if extra or select.larg is not None or select.rarg is not None:
        raise SpecError('%s must be a single SQL expression (%r)' % (kind, text))
    if len(select.targetList or ()) != 1 or select.targetList[0].name:
        raise SpecError('%s must be a single SQL expression, not a list (%r)' % (kind, text))
    node = select.targetList[0].val
    sublinks = _pglast()['sublinks']()
    sublinks(node)
    if sublinks.found:
        raise SpecError('%s must not hold a subquery (PostgreSQL: cannot use subquery in index expression or '
                        'predicate) (%r)' % (kind, text))
    return node


def _statements(kind, text):
    tokens = _tokens(kind, text)
    statements = _parse(kind, text)
    if len(statements) != 1:
        raise SpecError('%s must be a single statement, got %d (%r)' % (kind, len(statements), text))
    if any(token.name in _COMMENTS for token in tokens):
        raise SpecError('%s must be a single statement without comments (%r)' % (kind, text))
    return statements[0].stmt


def check_one_statement(kind, text, node_type=None):
    """``text`` if PostgreSQL reads it as exactly one statement (of ``node_type``, e.g. 'IndexStmt' or
    'SelectStmt', when given) without comments; SpecError otherwise.  Every text that carries user SQL
    passes here before it is sent."""
    require_pglast()
    statement = _statements(kind, text)
    if node_type is not None and type(statement).__name__ != node_type:
        raise SpecError('%s must be a %s statement, got %s (%r)'
                        % (kind, node_type, type(statement).__name__, text))
    return text


def is_query(kind, text):
    """True when ``text`` (one statement) is a query: SELECT, WITH ... SELECT, VALUES or TABLE."""
    return isinstance(_statements(kind, text), _pglast()['ast'].SelectStmt)


def prove_index_statement(kind, text, keys, where, include_count):
    """Prove that ``text`` is exactly one CREATE INDEX whose keys and predicate are the given ones.

    ``keys``: for each index key, ('name', column) or ('expression', user text); ``where``: the user's
    predicate or None.  Each expression must parse, inside the statement, to the very tree it parses to
    on its own: a fragment that escapes its parentheses changes the tree and is refused.
    """
    require_pglast()
    statement = _statements(kind, text)
    if not isinstance(statement, _pglast()['ast'].IndexStmt):
        raise SpecError('%s must be one CREATE INDEX statement, got %s' % (kind, type(statement).__name__))
    params = list(statement.indexParams or ())
    if len(params) != len(keys):
        raise SpecError('%s: the statement has %d key(s), the index %d: an expression is not what it seems (%r)'
                        % (kind, len(params), len(keys), text))
    for element, (what, value) in zip(params, keys):
        if what == 'name':
            if element.name != value or element.expr is not None:
                raise SpecError('%s: key %r is not the column it names (%r)' % (kind, value, text))
        elif element.expr != expression_node(kind, value) or element.name is not None:
            raise SpecError('%s: the expression %r does not parse to itself inside the statement (%r)'
                            % (kind, value, text))
    if len(statement.indexIncludingParams or ()) != include_count:
        raise SpecError('%s: INCLUDE is not what was given (%r)' % (kind, text))
    if where is None:
        if statement.whereClause is not None:
            raise SpecError('%s: the statement has a predicate that was not given (%r)' % (kind, text))
    elif statement.whereClause != expression_node(kind, where):
        raise SpecError('%s: the predicate %r does not parse to itself inside the statement (%r)' % (kind, where, text))
    return text

# -*- coding: utf-8 -*-
# Copyright: ChefCloud Platform Engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Prove that user SQL (an index expression, a partial-index predicate) is ONE expression.

Index expressions and WHERE predicates are SQL by nature, so they cannot go through
sql.Identifier.  They are placed inside parentheses of our own statement, and this lexer proves
they cannot escape them: outside string literals and quoted identifiers, every parenthesis is
balanced and never closes one it did not open, there is no ``;`` and no comment (a ``--`` would
hide the rest of our statement).  Sessions run with standard_conforming_strings on, so only
E'...' strings treat backslashes as escapes, as this lexer assumes.  The server then
parses and normalizes the whole definition on an empty copy of the table (index_spec), so anything
that is not a valid index expression fails there, inside a transaction that is rolled back.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.chefcloud.pgindex.plugins.module_utils.errors import SpecError

_DOLLAR_TAG = re.compile(r'\$([A-Za-z_\x80-\uffff][A-Za-z_0-9\x80-\uffff]*)?\$')


def _skip_quoted(text, i, quote, backslash_escapes):
    """Index just after the literal/identifier starting at text[i] (a quote char), or -1 if unterminated."""
    i += 1
    while i < len(text):
        char = text[i]
        if backslash_escapes and char == '\\':
            i += 2
            continue
        if char == quote:
            if i + 1 < len(text) and text[i + 1] == quote:  # doubled quote
                i += 2
                continue
            return i + 1
        i += 1
    return -1


def check_single_expression(kind, text):
    """Return ``text`` if it is one parenthesis-balanced SQL expression with no statement separator.

    Raises SpecError naming ``kind`` (e.g. "where of index idx_x") otherwise.
    """
    if not isinstance(text, str) or not text.strip():
        raise SpecError('%s must be a non-empty SQL expression' % kind)
    if '\x00' in text:
        raise SpecError('%s contains a NUL character' % kind)
    depth = 0
    i = 0
    while i < len(text):
        char = text[i]
        if char == "'":
            backslash = i > 0 and text[i - 1] in 'eE' and (i < 2 or not (text[i - 2].isalnum() or text[i - 2] == '_'))
            end = _skip_quoted(text, i, "'", backslash)
        elif char == '"':
            end = _skip_quoted(text, i, '"', False)
        elif text.startswith('--', i) or text.startswith('/*', i):
            raise SpecError('%s must be a single SQL expression without comments (%r)' % (kind, text))
        elif char == '$' and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == '_')) and _DOLLAR_TAG.match(text, i):
            tag = _DOLLAR_TAG.match(text, i).group(0)
            close = text.find(tag, i + len(tag))
            end = -1 if close < 0 else close + len(tag)
        else:
            if char == ';':
                raise SpecError('%s must be a single SQL expression: ";" is not allowed outside a string literal (%r)'
                                % (kind, text))
            if char == '(':
                depth += 1
            elif char == ')':
                depth -= 1
                if depth < 0:
                    raise SpecError('%s must be a single SQL expression: it closes a parenthesis it did not open (%r)'
                                    % (kind, text))
            end = i + 1
        if end < 0:
            raise SpecError('%s has an unterminated string or quoted identifier (%r)' % (kind, text))
        i = end
    if depth != 0:
        raise SpecError('%s must be a single SQL expression: unbalanced parentheses (%r)' % (kind, text))
    return text

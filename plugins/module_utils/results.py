# -*- coding: utf-8 -*-
# Copyright: ChefCloud Platform Engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one shape of an index result, success or failure, and the outcome of a change set.

Every result of pg_concurrent_index and every entry of pg_index_set's ``indexes`` has the keys of
RESULT_KEYS:

- ``name``, ``schema``, ``table``, ``action`` (None when the index failed before a plan existed,
  ``not started`` when an earlier failure stopped the change set);
- ``changed``, ``failed``, ``msg`` (what happened, or why it failed), ``error`` (one line
  ``ExceptionClass: message`` of the failure, or None);
- ``duration_s`` (float), ``queries`` (the SQL executed, in order; the SQL planned in check mode),
  ``cleaned_up`` (INVALID leftovers this run dropped), ``leftovers`` (INVALID indexes left behind:
  ``{index, schema, drop_sql}``), ``attempts``, ``blockers``.

A change set's outcome (``set_outcome``) adds the top-level ``failed``, ``msg`` (the first real cause,
then every leftover with the statement that drops it) and ``leftovers`` (all of them).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

RESULT_KEYS = ('name', 'schema', 'table', 'action', 'changed', 'failed', 'msg', 'error', 'duration_s',
               'queries', 'cleaned_up', 'leftovers', 'attempts', 'blockers')

NOT_STARTED = 'not started'


def quote_ident(name):
    """An identifier quoted the way PostgreSQL's quote_ident always may (for the text of a message)."""
    return '"%s"' % str(name).replace('"', '""')


def drop_sql(schema, index):
    """The exact statement that drops an INVALID leftover."""
    return 'DROP INDEX CONCURRENTLY IF EXISTS %s.%s;' % (quote_ident(schema), quote_ident(index))


def leftover(schema, index, observed=True):
    """One INVALID index left behind; ``observed`` False when it could not be re-checked (server down)."""
    return dict(index=index, schema=schema, drop_sql=drop_sql(schema, index), observed=observed)


def index_result(name, schema, table, action=None, **fields):
    """A result with every key of RESULT_KEYS (``fields`` override the defaults)."""
    result = dict(name=name, schema=schema, table=table, action=action, changed=False, failed=False, msg='',
                  error=None, duration_s=0.0, queries=[], cleaned_up=[], leftovers=[], attempts=0, blockers=[])
    result.update(fields)
    result['duration_s'] = float(result['duration_s'] or 0.0)
    return result


def complete(result, name=None, schema=None, table=None):
    """``result`` with every key of RESULT_KEYS (missing ones get their default)."""
    full = index_result(result.get('name', name), result.get('schema', schema), result.get('table', table))
    full.update(result)
    for key in ('queries', 'cleaned_up', 'leftovers', 'blockers'):
        full[key] = list(full[key] or [])
    full['duration_s'] = float(full['duration_s'] or 0.0)
    return full


def describe_leftovers(leftovers):
    """The sentence that names every leftover and the statement that drops it ('' when none)."""
    if not leftovers:
        return ''
    parts = []
    for item in leftovers:
        state = 'left INVALID' if item.get('observed', True) else 'possibly left INVALID (the server could not be checked)'
        parts.append('%s.%s %s: run %s' % (item['schema'], item['index'], state, item['drop_sql']))
    return ('INVALID index(es) left behind (they cost write overhead until dropped; the next run rebuilds '
            'them): %s' % '; '.join(parts))


def not_started(name, schema, table, reason):
    return index_result(name, schema, table, action=NOT_STARTED, failed=False,
                        msg='not started: %s' % reason)


def set_outcome(results, check_mode=False):
    """The change set's top-level ``failed``, ``msg`` and ``leftovers`` from its index results.

    ``msg`` starts with the first real cause (the first index that failed, in the order the failures
    happened when results carry ``_order``), then names every leftover and what was not started.
    """
    failed = [r for r in results if r.get('failed')]
    failed.sort(key=lambda r: r.get('_order', 0))
    skipped = [r for r in results if r.get('action') == NOT_STARTED]
    leftovers = []
    for result in results:
        for item in result.get('leftovers') or []:
            if item not in leftovers:
                leftovers.append(item)
    if not failed:
        verb = 'would be' if check_mode else 'are'
        return dict(failed=False, leftovers=leftovers,
                    msg='%d index(es) %s in place' % (len(results), verb) if results else 'no index to do')
    first = failed[0]
    cause = first.get('msg') or first.get('error') or 'failed'
    qualified = '%s.%s' % (first['schema'], first['name'])
    parts = [cause if qualified in cause else 'index %s: %s' % (qualified, cause)]
    described = describe_leftovers(leftovers)
    if described and described not in parts[0]:
        parts.append(described)
    others = [r['name'] for r in failed[1:]]
    tail = '%d of %d index(es) failed' % (len(failed), len(results))
    if others:
        tail += ' (also %s)' % ', '.join(others)
    if skipped:
        tail += '; not started: %s' % ', '.join(r['name'] for r in skipped)
    parts.append('[%s]' % tail)
    return dict(failed=True, msg=' '.join(parts), leftovers=leftovers)

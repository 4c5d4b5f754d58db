# -*- coding: utf-8 -*-
# Copyright: ChefCloud Platform Engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""THE reader of a change set: every entry of ``indexes`` is parsed and validated here, once, into a
whole ChangeSetEntry, before any connection is opened.

Every module that takes a change set (pg_index_set, pg_preflight, pg_index_verify) and the role's own
validation (the ``changeset_problems`` filter) call ``read_changeset``, so an entry means the same thing
everywhere and is refused with the same message everywhere.

* ``INDEX_ARGUMENT_SPEC`` is the one spec of the options of one index (pg_concurrent_index's options): the
  single source of their types, defaults and choices.  Build policies (``POLICY_OPTIONS``) and session
  settings (``SESSION_OPTIONS``) are parts of it; ``option_default`` reads a default from it.
* An entry may also hold ``verify`` (``VERIFY_KEYS``: the query pg_index_verify times and explains).
* Any other key is an error with a "did you mean" hint: ``index idx_x: unknown key 'uniqe' (did you mean
  'unique'?)``.  A value of the wrong type is an error naming the index and the key.
* Names: every identifier reaches PostgreSQL through sql.Identifier, i.e. quoted, so a name is stored
  exactly as written (``IDX_Dup`` creates ``"IDX_Dup"``).  A name may also be written as PostgreSQL
  writes a quoted identifier, ``'"IDX_Dup"'`` (the quotes are taken off, ``""`` stands for one quote).
  Two entries are the same index when their schema and name are equal exactly, or equal once an
  unquoted name is folded to lower case as PostgreSQL folds it: ``idx_dup`` and ``IDX_DUP`` collide (in
  psql both are idx_dup), ``idx_dup`` and ``'"IDX_DUP"'`` do not (a quoted name is exact), and ``idx_dup``
  in two schemas does not.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import copy
import difflib

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.validation import (
    check_type_bool, check_type_dict, check_type_float, check_type_int, check_type_list, check_type_str)

from ansible_collections.chefcloud.pgindex.plugins.module_utils.errors import SpecError
from ansible_collections.chefcloud.pgindex.plugins.module_utils.index_spec import IndexSpec

INDEX_ARGUMENT_SPEC = dict(
    name=dict(type='str', required=True, aliases=['index']),
    table=dict(type='str'),
    schema=dict(type='str', default='public'),
    columns=dict(type='list', elements='raw', aliases=['column']),
    method=dict(type='str', default='btree', choices=['btree', 'hash', 'gin', 'gist', 'brin', 'spgist']),
    unique=dict(type='bool', default=False),
    nulls_not_distinct=dict(type='bool', default=False),
    include=dict(type='list', elements='str'),
    where=dict(type='str'),
    tablespace=dict(type='str'),
    storage_params=dict(type='dict'),
    state=dict(type='str', default='present', choices=['present', 'absent']),
    on_drift=dict(type='str', default='fail', choices=['fail', 'replace', 'ignore']),
    on_invalid=dict(type='str', default='rebuild', choices=['rebuild', 'fail']),
    on_build_in_progress=dict(type='str', default='fail', choices=['fail', 'wait']),
    build_wait_timeout=dict(type='int', default=600),
    lock_timeout=dict(type='str', default='5s'),
    snapshot_wait_timeout=dict(type='str', default='30min'),
    retries=dict(type='int', default=3),
    retry_delay=dict(type='float', default=2.0),
    statement_timeout=dict(type='str', default='0'),
    maintenance_work_mem=dict(type='str'),
    max_parallel_maintenance_workers=dict(type='int'),
)

INDEX_REQUIRED_IF = [('state', 'present', ('table', 'columns'))]

POLICY_OPTIONS = ('on_drift', 'on_invalid', 'on_build_in_progress', 'build_wait_timeout', 'lock_timeout',
                  'snapshot_wait_timeout', 'retries', 'retry_delay')

# statement_timeout first: a tiny role or database default must not cancel the other settings.
SESSION_OPTIONS = ('statement_timeout', 'maintenance_work_mem', 'max_parallel_maintenance_workers')

# The ``verify`` of an entry: what pg_index_verify reads from it (verify.VerifyQuery).
VERIFY_KEYS = ('query', 'params', 'label')
VERIFY_SPEC = dict(query=dict(type='str', required=True), params=dict(type='dict'), label=dict(type='str'))

ENTRY_KEYS = tuple(INDEX_ARGUMENT_SPEC) + ('verify',)
_ALIASES = dict((alias, key) for key, spec in INDEX_ARGUMENT_SPEC.items() for alias in spec.get('aliases', ()))

_TYPE_NAMES = dict(str='a string', int='an integer', float='a number', bool='a boolean (true or false)',
                   list='a list', dict='a dict', raw='a value')
_CHECKERS = dict(str=check_type_str, int=check_type_int, float=check_type_float, bool=check_type_bool,
                 list=check_type_list, dict=check_type_dict)


def option_default(name):
    """The default of an index option, from INDEX_ARGUMENT_SPEC."""
    return INDEX_ARGUMENT_SPEC[name].get('default')


def shared_option(name, **overrides):
    """A copy of the spec of an index option, for a module option of the same meaning (schema, state,
    lock_timeout, on_drift...) so that its type, default and choices are written once."""
    spec = copy.deepcopy(INDEX_ARGUMENT_SPEC[name])
    spec.pop('aliases', None)
    spec.update(overrides)
    return spec


POLICY_DEFAULTS = dict((name, option_default(name)) for name in POLICY_OPTIONS)


def split_params(params):
    """(session settings, policy options) of one index's parameters."""
    settings = dict((name, params.get(name)) for name in SESSION_OPTIONS)
    options = dict((name, params.get(name)) for name in POLICY_OPTIONS)
    return settings, options


# --------------------------------------------------------------------------------------------------
# Names as PostgreSQL reads them
# --------------------------------------------------------------------------------------------------

def unquote_identifier(value):
    """``'"IDX_Dup"'`` -> ``'IDX_Dup'`` (a name written as a quoted SQL identifier); other values as given."""
    if isinstance(value, str) and len(value) >= 2 and value.startswith('"') and value.endswith('"'):
        inner = value[1:-1]
        if '"' not in inner.replace('""', ''):
            return inner.replace('""', '"')
    return value


def folded_identifier(value):
    """The name PostgreSQL would read for ``value`` typed unquoted in SQL: ASCII letters folded to lower
    case (downcase_identifier); a value written in double quotes is exact."""
    if not isinstance(value, str):
        return value
    if unquote_identifier(value) is not value:
        return unquote_identifier(value)
    return ''.join(chr(ord(c) + 32) if 'A' <= c <= 'Z' else c for c in value)


# --------------------------------------------------------------------------------------------------
# One entry
# --------------------------------------------------------------------------------------------------

VerifyPart = collections.namedtuple('VerifyPart', ['query', 'params', 'label'])


class ChangeSetEntry(collections.namedtuple('ChangeSetEntry', [
        'position', 'name', 'schema', 'params', 'spec', 'verify', 'settings', 'options', 'item', 'folded_key'])):
    """One entry of a change set, read whole and immutable.

    ``params``  every index option (INDEX_ARGUMENT_SPEC), validated, defaults filled (a dict copy)
    ``spec``    the IndexSpec: names checked, expressions proven single (sql_expression)
    ``verify``  VerifyPart(query, params, label) or None
    ``settings``, ``options``  the session settings and build policies (split_params)
    ``item``    the entry as given (a copy), for reports
    ``folded_key``  (schema, name) as PostgreSQL would read them unquoted (folded_identifier)
    """

    __slots__ = ()

    @property
    def qualified_name(self):
        return self.spec.qualified_name

    @property
    def state(self):
        return self.params['state']

    @property
    def exact_key(self):
        return (self.spec.schema, self.spec.name)


def _label(item, position):
    name = item.get('name', item.get('index')) if isinstance(item, dict) else None
    return 'index %s' % name if isinstance(name, str) and name else 'indexes[%d]' % position


def unknown_keys(label, given, known, what='key'):
    """'index idx_x: unknown key 'uniqe' (did you mean 'unique'?)', one per unknown key."""
    problems = []
    for key in sorted((k for k in given if k not in known), key=str):
        close = difflib.get_close_matches(str(key), [str(k) for k in known], n=1, cutoff=0.6)
        hint = " (did you mean '%s'?)" % close[0] if close else ' (known: %s)' % ', '.join(sorted(known))
        problems.append("%s: unknown %s '%s'%s" % (label, what, key, hint))
    return problems


def _type_problems(label, values, spec, prefix=''):
    problems = []
    for key, value in values.items():
        option = spec.get(_ALIASES.get(key, key)) if spec is INDEX_ARGUMENT_SPEC else spec.get(key)
        if option is None or value is None:
            continue
        kind = option.get('type', 'str')
        checker = _CHECKERS.get(kind)
        if kind == 'str' and not isinstance(value, str):
            # A number for a string option (lock_timeout: 5) is what the user means; a list or a dict is not.
            if isinstance(value, (list, dict, bool)):
                problems.append("%s: key '%s%s' must be %s, got %r" % (label, prefix, key, _TYPE_NAMES[kind], value))
            continue
        if kind == 'bool' and not isinstance(value, bool) and str(value).lower() not in (
                'yes', 'no', 'true', 'false', 'on', 'off', '1', '0', 'y', 'n', 't', 'f'):
            problems.append("%s: key '%s%s' must be %s, got %r" % (label, prefix, key, _TYPE_NAMES[kind], value))
            continue
        if kind == 'list' and not isinstance(value, list):
            problems.append("%s: key '%s%s' must be %s, got %r" % (label, prefix, key, _TYPE_NAMES[kind], value))
            continue
        if kind == 'dict' and not isinstance(value, dict):
            problems.append("%s: key '%s%s' must be %s, got %r" % (label, prefix, key, _TYPE_NAMES[kind], value))
            continue
        if checker is not None:
            try:
                checker(value)
            except (TypeError, ValueError):
                problems.append("%s: key '%s%s' must be %s, got %r" % (label, prefix, key, _TYPE_NAMES[kind], value))
                continue
        if option.get('choices') and kind == 'str' and str(value) not in option['choices']:
            problems.append("%s: key '%s%s' must be one of %s, got %r"
                            % (label, prefix, key, ', '.join(option['choices']), value))
    return problems


def _validated(label, given):
    result = ArgumentSpecValidator(INDEX_ARGUMENT_SPEC).validate(given)
    if result.error_messages:
        raise SpecError('%s: %s' % (label, '; '.join(result.error_messages)))
    return result.validated_parameters


def read_defaults(defaults, what='defaults'):
    """Defaults for every entry (pg_index_set's ``defaults``, the role's pgindex_* options): index
    options only, checked like an entry's; None and empty values are left out (an empty role option
    means "the server's"; ansible-core before 2.19 renders a None template as an empty string)."""
    if defaults is None:
        return {}
    if not isinstance(defaults, dict):
        raise SpecError('%s must be a dict of index options, got %r' % (what, defaults))
    given = dict((key, value) for key, value in defaults.items() if value is not None and value != '')
    problems = unknown_keys(what, given, [k for k in INDEX_ARGUMENT_SPEC if k != 'name'], 'option')
    problems += _type_problems(what, given, INDEX_ARGUMENT_SPEC)
    if problems:
        raise SpecError('; '.join(problems))
    return given


def _read_verify(label, verify):
    if verify is None or verify == {}:
        return None
    if not isinstance(verify, dict):
        raise SpecError('%s: verify must be a dict with query, params and label, got %r' % (label, verify))
    problems = unknown_keys(label, verify, VERIFY_KEYS, 'verify key')
    if not problems:
        query = verify.get('query')
        if not isinstance(query, str) or not query.strip():
            problems.append("%s: verify.query must be a non-empty SQL query, got %r" % (label, query))
        if verify.get('params') is not None and not isinstance(verify['params'], dict):
            problems.append('%s: verify.params must be a dict of placeholder values, got %r' % (label, verify['params']))
        if verify.get('label') is not None and not isinstance(verify['label'], str):
            problems.append('%s: verify.label must be a string, got %r' % (label, verify['label']))
    if problems:
        raise SpecError('; '.join(problems))
    return VerifyPart(verify['query'], dict(verify.get('params') or {}), verify.get('label'))


def read_entry(item, defaults=None, position=0, require_definition=None, prove_sql=True):
    """One change set entry -> ChangeSetEntry; SpecError naming the index and the key otherwise.

    ``defaults`` (already read by read_defaults) fill what the entry does not set.
    ``require_definition``: True requires table and columns, False does not, None (the default)
    requires them when the entry's state is present.
    ``prove_sql=False`` skips the proof that expressions are single (where pglast is not installed:
    the modules prove them on the module host before anything is sent).
    """
    label = _label(item, position)
    if not isinstance(item, dict):
        raise SpecError('%s must be a dict with at least name, table and columns, got %r' % (label, item))
    problems = unknown_keys(label, item, list(ENTRY_KEYS) + list(_ALIASES))
    problems += _type_problems(label, dict((k, v) for k, v in item.items() if k != 'verify'), INDEX_ARGUMENT_SPEC)
    if problems:
        raise SpecError('; '.join(problems))
    given = dict(defaults or {})
    given.update((key, value) for key, value in item.items() if key != 'verify' and value is not None)
    name = given.get('name', given.get('index'))
    if not isinstance(name, str) or not name:
        raise SpecError('%s must be a dict with at least name, table and columns, got %r' % (label, item))
    folded = (folded_identifier(given.get('schema') or option_default('schema')), folded_identifier(name))
    for key in ('name', 'index', 'schema', 'table'):
        if key in given:
            given[key] = unquote_identifier(given[key])
    params = _validated(label, given)
    spec = IndexSpec.from_params(params, prove_sql=prove_sql)
    if require_definition or (require_definition is None and params['state'] == 'present'):
        spec.require_definition()
    verify = _read_verify(label, item.get('verify'))
    settings, options = split_params(params)
    return ChangeSetEntry(position, spec.name, spec.schema, params, spec, verify, settings, options, dict(item),
                          folded)


def read_changeset(items, defaults=None, require_definition=None, what='indexes', prove_sql=True):
    """A whole change set -> [ChangeSetEntry], in order; SpecError for the first bad entry or a duplicate.

    ``defaults``: index options for every entry that does not set them (checked by read_defaults).
    Duplicates are judged by schema-qualified name, exactly and as PostgreSQL folds unquoted names.
    """
    if not isinstance(items, list):
        raise SpecError('%s must be a list of dicts (name, table, columns...), got %r' % (what, items))
    base = read_defaults(defaults)
    entries = [read_entry(item, base, position, require_definition, prove_sql) for position, item in enumerate(items)]
    check_duplicates(entries, what)
    return entries


def check_duplicates(entries, what='indexes'):
    seen = {}
    for entry in entries:
        for key in (('exact',) + entry.exact_key, ('folded',) + entry.folded_key):
            first = seen.get(key)
            if first is not None and first is not entry:
                same = first.qualified_name == entry.qualified_name
                raise SpecError(
                    '%s lists index %s twice (entries %d and %d)%s' % (
                        what, first.qualified_name, first.position + 1, entry.position + 1,
                        '' if same else ' as %s: PostgreSQL folds unquoted names to lower case, so both are %s.%s '
                        'in SQL; rename one, or write the name in double quotes (\'"%s"\') if it really is '
                        'another index' % (entry.qualified_name, entry.folded_key[0], entry.folded_key[1],
                                           entry.name)))
            seen[key] = entry


def changeset_problems(items, defaults=None, prove_sql=True):
    """[] for a valid change set, else [the message read_changeset raises] (for the role's validation)."""
    try:
        read_changeset(items, defaults, prove_sql=prove_sql)
    except SpecError as exc:
        return [exc.msg]
    return []

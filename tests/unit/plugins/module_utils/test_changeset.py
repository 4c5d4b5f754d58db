"""module_utils/changeset.py: the one reader of a change set entry, and the one spec of the index options."""
import pytest

from ansible_collections.chefcloud.pgindex.plugins.filter.changeset_problems import changeset_problems
from ansible_collections.chefcloud.pgindex.plugins.module_utils import changeset, ensure, preflight, verify
from ansible_collections.chefcloud.pgindex.plugins.module_utils.errors import SpecError
from ansible_collections.chefcloud.pgindex.plugins.modules import pg_index_verify, pg_preflight

A = dict(name='idx_x', table='payments', columns=['org_id'])


def refused(items, defaults=None):
    with pytest.raises(SpecError) as caught:
        changeset.read_changeset(items, defaults)
    assert 'Traceback' not in caught.value.msg
    return caught.value.msg


@pytest.mark.parametrize('key, value, message', [
    ('uniqe', True, "index idx_x: unknown key 'uniqe' (did you mean 'unique'?)"),
    ('were', 'org_id > 1', "index idx_x: unknown key 'were' (did you mean 'where'?)"),
    ('colums', ['a'], "index idx_x: unknown key 'colums' (did you mean 'columns'?)"),
    ('lock_timout', '1s', "index idx_x: unknown key 'lock_timout' (did you mean 'lock_timeout'?)"),
])
def test_a_misspelled_key_is_an_error_with_a_hint(key, value, message):
    assert refused([dict(A, **{key: value})]) == message


def test_every_unknown_key_is_named_and_one_without_a_neighbour_lists_the_known_ones():
    assert refused([dict(A, uniqe=True, were='x')]) == (
        "index idx_x: unknown key 'uniqe' (did you mean 'unique'?); index idx_x: unknown key 'were' (did you mean 'where'?)")
    assert refused([dict(A, ticket='OPS-1')]).startswith("index idx_x: unknown key 'ticket' (known: build_wait_timeout, column,")


@pytest.mark.parametrize('key, value, message', [
    ('unique', 'maybe', "index idx_x: key 'unique' must be a boolean (true or false), got 'maybe'"),
    ('retries', 'many', "index idx_x: key 'retries' must be an integer, got 'many'"),
    ('retry_delay', 'soon', "index idx_x: key 'retry_delay' must be a number, got 'soon'"),
    ('method', 'bree', "index idx_x: key 'method' must be one of btree, hash, gin, gist, brin, spgist, got 'bree'"),
    ('state', 'gone', "index idx_x: key 'state' must be one of present, absent, got 'gone'"),
    ('columns', 'org_id', "index idx_x: key 'columns' must be a list, got 'org_id'"),
    ('storage_params', 'fillfactor=70', "index idx_x: key 'storage_params' must be a dict, got 'fillfactor=70'"),
    ('where', ['a'], "index idx_x: key 'where' must be a string, got ['a']"),
])
def test_a_value_of_the_wrong_type_names_the_index_and_the_key(key, value, message):
    assert refused([dict(A, **{key: value})]) == message


def test_values_that_mean_the_type_are_converted():
    entry = changeset.read_changeset([dict(A, unique='yes', retries='5', retry_delay='0.5', lock_timeout=10)])[0]
    assert (entry.params['unique'], entry.params['retries'], entry.params['retry_delay'], entry.params['lock_timeout']) \
        == (True, 5, 0.5, '10')
    assert entry.spec.unique is True and entry.options['retries'] == 5


def test_the_entry_is_read_whole_with_defaults_from_the_one_spec():
    entry = changeset.read_changeset([dict(A, verify=dict(query='SELECT 1', label='q'))], dict(lock_timeout='9s'))[0]
    assert entry.params['lock_timeout'] == '9s'                   # the defaults given
    assert entry.params['snapshot_wait_timeout'] == '30min'       # the spec's own
    assert entry.options == dict(changeset.POLICY_DEFAULTS, lock_timeout='9s')
    assert entry.settings == dict(statement_timeout='0', maintenance_work_mem=None, max_parallel_maintenance_workers=None)
    assert entry.verify == changeset.VerifyPart('SELECT 1', {}, 'q')
    assert entry.qualified_name == 'public.idx_x'
    with pytest.raises(AttributeError):
        entry.name = 'other'


def test_defaults_are_checked_like_entries():
    assert refused([A], dict(lok='1s')).startswith("defaults: unknown option 'lok' (known:")
    assert refused([A], dict(uniqe=True)) == "defaults: unknown option 'uniqe' (did you mean 'unique'?)"
    assert refused([A], dict(retries='x')) == "defaults: key 'retries' must be an integer, got 'x'"


def test_verify_keys_are_checked():
    assert refused([dict(A, verify=dict(query='SELECT 1', parms={}))]) == \
        "index idx_x: unknown verify key 'parms' (did you mean 'params'?)"
    assert refused([dict(A, verify='SELECT 1')]).startswith('index idx_x: verify must be a dict with query, params and label')
    assert refused([dict(A, verify=dict(params={}))]) == 'index idx_x: verify.query must be a non-empty SQL query, got None'
    assert refused([dict(A, verify=dict(query='SELECT 1', params=[1]))]).startswith('index idx_x: verify.params must be a dict')


@pytest.mark.parametrize('first, second, collide', [
    (dict(name='idx_dup'), dict(name='IDX_DUP'), True),          # PostgreSQL folds unquoted names
    (dict(name='idx_dup'), dict(name='Idx_Dup'), True),
    (dict(name='idx_dup'), dict(name='"IDX_DUP"'), False),        # a quoted name is exact
    (dict(name='IDX_DUP'), dict(name='"IDX_DUP"'), True),         # ...and the same index as IDX_DUP as stored
    (dict(name='idx_dup'), dict(name='idx_dup', schema='sales'), False),
    (dict(name='idx_dup', schema='Sales'), dict(name='idx_dup', schema='sales'), True),
    (dict(name='idx_dup'), dict(name='idx_dup', schema='public'), True),
])
def test_duplicates_by_schema_qualified_name_as_postgresql_folds_them(first, second, collide):
    items = [dict(A, **first), dict(A, **second)]
    if collide:
        assert refused(items).startswith('indexes lists index ')
    else:
        assert len(changeset.read_changeset(items)) == 2


def test_the_duplicate_message_explains_the_folding():
    assert refused([dict(A, name='idx_dup'), dict(A, name='IDX_DUP')]) == (
        "indexes lists index public.idx_dup twice (entries 1 and 2) as public.IDX_DUP: PostgreSQL folds unquoted "
        "names to lower case, so both are public.idx_dup in SQL; rename one, or write the name in double quotes "
        "('\"IDX_DUP\"') if it really is another index")
    assert refused([dict(A, name='idx_dup'), A, dict(A, name='idx_dup')]) == \
        'indexes lists index public.idx_dup twice (entries 1 and 3)'


def test_a_quoted_name_is_the_exact_identifier():
    entry = changeset.read_changeset([dict(A, name='"IDX ""Q"""', schema='"Sales"')])[0]
    assert (entry.spec.schema, entry.spec.name) == ('Sales', 'IDX "Q"')
    assert changeset.folded_identifier('"IDX"') == 'IDX' and changeset.folded_identifier('IDX_É') == 'idx_É'


def test_entries_that_are_not_dicts_or_have_no_name():
    assert refused(['idx_a']) == "indexes[0] must be a dict with at least name, table and columns, got 'idx_a'"
    assert refused([dict(table='t', columns=['a'])]).startswith('indexes[0] must be a dict with at least name')
    assert refused('idx_a').startswith('indexes must be a list of dicts')
    assert refused([dict(name='idx_x', table='payments')]) == \
        'index idx_x: columns must list at least one column when state is present'
    assert changeset.read_changeset([dict(name='idx_x', state='absent')])[0].state == 'absent'


def test_there_is_one_spec_of_the_shared_options():
    assert ensure.DEFAULT_OPTIONS is changeset.POLICY_DEFAULTS
    for name in ('schema', 'state', 'lock_timeout', 'on_drift', 'on_invalid'):
        assert preflight.DEFAULTS[name] == changeset.option_default(name)
        assert pg_preflight.ARGUMENT_SPEC[name]['default'] == changeset.option_default(name)
        assert pg_preflight.ARGUMENT_SPEC[name].get('choices') == changeset.INDEX_ARGUMENT_SPEC[name].get('choices')
    for name in ('schema', 'state', 'lock_timeout'):
        assert verify.DEFAULT_OPTIONS[name] == changeset.option_default(name)
        assert pg_index_verify.ARGUMENT_SPEC[name]['default'] == changeset.option_default(name)
    from ansible_collections.chefcloud.pgindex.plugins.module_utils import index_options
    assert index_options.INDEX_ARGUMENT_SPEC is changeset.INDEX_ARGUMENT_SPEC
    assert index_options.split_params is changeset.split_params


def test_the_role_filter_gives_the_modules_message():
    assert changeset_problems([dict(A, uniqe=True)], {}) == ["index idx_x: unknown key 'uniqe' (did you mean 'unique'?)"]
    assert changeset_problems([A], {'lock_timeout': '5s', 'max_parallel_maintenance_workers': None}) == []

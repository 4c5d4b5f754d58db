"""Issue 11 case 6, at playbook level: a misspelled key, a mistyped value or an index listed twice fails the
deploy playbook and its --check run before any DDL (before any module connects), rc != 0, with the reader's
message as the last error of the run. The change set is 001 with one entry edited."""
import re

import pytest
import yaml

from helpers.playbooks import ROOT, SIX, playbook, six_state

CHANGESET = yaml.safe_load((ROOT / 'changesets' / '001_franchise_indexes.yml').read_text())


def edited(tmp_path, **changes):
    data = dict(CHANGESET, pgindex_indexes=[dict(entry) for entry in CHANGESET['pgindex_indexes']])
    data['pgindex_indexes'][0].update(changes)
    path = tmp_path / 'edited.yml'
    path.write_text(yaml.safe_dump(data))
    return path


def last_error(out):
    """The last [ERROR] line of an ansible-playbook run: what the operator reads last."""
    errors = re.findall(r'^\[ERROR\]: (.*)$', out, re.M)
    assert errors, out
    return errors[-1]


def deploy(db, changeset, check):
    return playbook(db, 'playbooks/deploy_indexes.yml', '-i', 'inventories/local',
                    '-e', 'pgindex_changeset_file=%s' % changeset, *(['--check'] if check else []))


@pytest.mark.parametrize('changes, message', [
    (dict(uniqe=True), "index idx_fr_overview_org_period: unknown key 'uniqe' (did you mean 'unique'?)"),
    (dict(were="org_id = 'ORG_1'"), "index idx_fr_overview_org_period: unknown key 'were' (did you mean 'where'?)"),
    (dict(unique='maybe'), "index idx_fr_overview_org_period: key 'unique' must be a boolean (true or false), got 'maybe'"),
    (dict(method='bree'), "index idx_fr_overview_org_period: key 'method' must be one of btree, hash, gin, gist, brin, "
                          "spgist, got 'bree'"),
    (dict(verify=dict(query='SELECT 1', parms={})),
     "index idx_fr_overview_org_period: unknown verify key 'parms' (did you mean 'params'?)"),
    (dict(name='IDX_PAYMENTS_ORG_STATUS_CREATED', table='payments', columns=['org_id']),
     'indexes lists index public.IDX_PAYMENTS_ORG_STATUS_CREATED twice (entries 1 and 6) as '
     'public.idx_payments_org_status_created: PostgreSQL folds unquoted names to lower case'),
])
@pytest.mark.parametrize('check', [True, False], ids=['check', 'real'])
def test_a_bad_entry_fails_the_deploy_before_any_ddl(db, tmp_path, changes, message, check):
    rc, out = deploy(db, edited(tmp_path, **changes), check)
    assert rc != 0, out
    assert message in last_error(out), last_error(out)
    assert 'Run the preflight checks' not in out and 'Start the change set' not in out
    assert six_state(db) == {name: None for name in SIX}
    assert 'Traceback' not in out


def test_a_quoted_upper_case_name_is_another_index_and_builds(db, tmp_path):
    path = edited(tmp_path, name='"IDX_Overview"')
    rc, out = deploy(db, path, False)
    assert rc == 0, out
    assert db.index('IDX_Overview')[0] is True and db.index('idx_fr_overview_org_period') is None

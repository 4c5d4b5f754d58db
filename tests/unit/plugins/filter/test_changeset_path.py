"""Filter chefcloud.pgindex.changeset_path: a change set path from the current directory, else the playbook's."""
import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.chefcloud.pgindex.plugins.filter.changeset_path import FilterModule

changeset_path = FilterModule().filters()['changeset_path']


@pytest.fixture
def layout(tmp_path, monkeypatch):
    """A checkout: changesets/ next to playbooks/, and a working directory elsewhere."""
    (tmp_path / 'repo' / 'playbooks').mkdir(parents=True)
    (tmp_path / 'repo' / 'changesets').mkdir()
    (tmp_path / 'repo' / 'changesets' / '001.yml').write_text('pgindex_indexes: []\n')
    (tmp_path / 'cwd' / 'changesets').mkdir(parents=True)
    monkeypatch.chdir(tmp_path / 'cwd')
    return tmp_path


def test_the_current_directory_wins(layout):
    (layout / 'cwd' / 'changesets' / '001.yml').write_text('pgindex_indexes: []\n')
    assert changeset_path('changesets/001.yml', layout / 'repo' / 'playbooks') == str(layout / 'cwd' / 'changesets' / '001.yml')


def test_then_the_playbook_directory_and_its_parent(layout):
    assert changeset_path('changesets/001.yml', layout / 'repo' / 'playbooks') == str(layout / 'repo' / 'changesets' / '001.yml')


def test_an_absolute_path_is_taken_as_is(layout):
    path = layout / 'repo' / 'changesets' / '001.yml'
    assert changeset_path(str(path), '/nowhere') == str(path)


def test_a_missing_file_names_every_place_it_looked(layout):
    with pytest.raises(AnsibleFilterError) as err:
        changeset_path('changesets/404.yml', layout / 'repo' / 'playbooks')
    message = str(err.value)
    assert "change set file 'changesets/404.yml' not found" in message
    for place in (layout / 'cwd', layout / 'repo' / 'playbooks', layout / 'repo'):
        assert str(place / 'changesets' / '404.yml') in message

"""The collection artifact: `ansible-galaxy collection build` ships what an installed collection needs and nothing
else, however polluted the tree it is built from (venvs, caches, build trees, an untracked folder).

galaxy.yml's `manifest:` is an allow-list; this test builds the artifact in a copy of the checkout polluted the way
a working tree gets (bench/.venv, .ansible/, tests/.pytest_cache, __pycache__, a stray tarball, a big untracked
folder) and asserts the exact file list: the checkout's files under the shipped folders, the shipped root files,
and the two files ansible-galaxy writes.
"""
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

# What the artifact holds: these folders (with these file types) and these root files.
SHIPPED_DIRS = {
    'plugins': ('.py',),
    'roles': ('.yml', '.yaml', '.j2', '.md'),
    'playbooks': ('.yml',),
    'changesets': ('.yml',),
    'docs': ('.md',),
}
SHIPPED_FILES = {'README.md', 'LICENSE', 'CHANGELOG.rst', 'requirements.txt', 'bindep.txt',
                 'changelogs/changelog.yaml', 'meta/runtime.yml', 'meta/execution-environment.yml'}
GENERATED = {'MANIFEST.json', 'FILES.json'}


def checkout_files():
    """Tracked and untracked-but-not-ignored files of the checkout (what tools/lint.sh copies too)."""
    out = subprocess.run(['git', 'ls-files', '-z', '--cached', '--others', '--exclude-standard'], cwd=str(ROOT),
                         capture_output=True, check=True).stdout.decode()
    return sorted(f for f in out.split('\0') if f and (ROOT / f).is_file() and not (ROOT / f).is_symlink())


def expected_files(files):
    wanted = set(GENERATED)
    for f in files:
        top = f.split('/', 1)[0]
        if f in SHIPPED_FILES or (top in SHIPPED_DIRS and f.endswith(SHIPPED_DIRS[top])
                                  and '/.' not in '/' + f and '__pycache__' not in f):
            wanted.add(f)
    return wanted


def pollute(tree):
    """What a working tree accumulates: none of it may reach the artifact."""
    junk = {
        '.venv/lib/python3.11/site-packages/yaml/__init__.py': 'x = 1\n',
        '.venv/bin/activate': '# venv\n',
        'bench/.venv/lib/python3.11/site-packages/psycopg2/__init__.py': 'x = 1\n',
        'bench/.collections/ansible_collections/community/postgresql/plugins/modules/postgresql_idx.py': 'x = 1\n',
        'bench/.collections/ansible_collections/community/postgresql/meta/runtime.yml': '---\n',
        '.ansible/collections/ansible_collections/x/y/galaxy.yml': '---\n',
        '.collections/ansible_collections/awx/awx/plugins/modules/job_launch.py': 'x = 1\n',
        'tests/.pytest_cache/v/cache/lastfailed': '{}\n',
        'tests/output/junit/python3.11.xml': '<xml/>\n',
        'plugins/modules/__pycache__/pg_concurrent_index.cpython-311.pyc': 'pyc',
        'plugins/module_utils/__pycache__/plan.cpython-311.pyc': 'pyc',
        'plugins/module_utils/plan.py~': 'editor backup\n',
        'plugins/modules/.pg_preflight.py.swp': 'swap\n',
        'roles/pgindex/.cache/facts.yml': '---\n',
        'roles/pgindex/tasks/deploy.yml.bak': '---\n',
        'playbooks/.ansible/tmp/x.yml': '---\n',
        'build/ee/context/Containerfile': 'FROM x\n',
        'reports/demo/001_franchise_indexes.local-db.md': '# report\n',
        'chefcloud-pgindex-0.9.0.tar.gz': 'old artifact',
        'changelogs/.plugin-cache.yaml': '---\n',
        'changelogs/fragments/unreleased.yml': '---\nbugfixes: [x]\n',
        'notes.md': 'untracked notes\n',
        'ansible.cfg': '[defaults]\n',
    }
    for rel, text in junk.items():
        path = tree / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    # an untracked folder of several MB (an unpacked dump, a local venv...)
    big = tree / 'scratch' / 'dump'
    big.mkdir(parents=True)
    for i in range(4):
        (big / ('part%d.yml' % i)).write_bytes(os.urandom(1 << 20))
    return set(junk) | {'scratch/dump/part%d.yml' % i for i in range(4)}


@pytest.fixture(scope='module')
def artifact(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('artifact')
    tree = tmp / 'pgindex'
    files = checkout_files()
    for f in files:
        (tree / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(str(ROOT / f), str(tree / f))
    junk = pollute(tree)
    env = {k: v for k, v in os.environ.items() if not k.startswith('ANSIBLE_')}
    build = subprocess.run([str(BIN / 'ansible-galaxy'), 'collection', 'build', str(tree), '--output-path',
                            str(tmp / 'dist')], capture_output=True, text=True, cwd=str(tmp), env=env,
                           timeout=300, check=False)
    assert build.returncode == 0, build.stdout + build.stderr
    version = yaml.safe_load((ROOT / 'galaxy.yml').read_text())['version']
    tarball = tmp / 'dist' / ('chefcloud-pgindex-%s.tar.gz' % version)
    assert tarball.is_file(), build.stdout
    return tarball, files, junk


def members(tarball):
    with tarfile.open(str(tarball)) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_artifact_holds_exactly_the_collection_files(artifact):
    tarball, files, junk = artifact
    shipped = {name for name, m in members(tarball).items() if m.isfile()}
    assert sorted(shipped) == sorted(expected_files(files))
    assert not shipped & junk
    tops = {name.split('/', 1)[0] for name in shipped}
    assert tops <= set(SHIPPED_DIRS) | {'meta', 'changelogs'} | {f for f in SHIPPED_FILES | GENERATED if '/' not in f}
    for absent in ('bench', 'tests', 'tools', 'extensions', 'inventories', 'ee', 'awx', 'BENCHMARKS.md',
                   'ansible.cfg', '.gitignore', 'Makefile', 'galaxy.yml'):
        assert absent not in tops, absent
    # the polluted tree held 4 MB of untracked data; the artifact stays small
    assert tarball.stat().st_size < 1024 * 1024


def test_artifact_is_licensed_and_versioned(artifact):
    tarball = artifact[0]
    with tarfile.open(str(tarball)) as tar:
        manifest = json.load(tar.extractfile('MANIFEST.json'))
        license_text = tar.extractfile('LICENSE').read().decode()
        role_readme = tar.extractfile('roles/pgindex/README.md').read().decode()
    info = manifest['collection_info']
    with open(os.path.join(os.path.dirname(__file__), '..', '..', 'galaxy.yml')) as handle:
        assert info['version'] == yaml.safe_load(handle)['version']
    assert info['license_file'] == 'LICENSE'   # galaxy.yml: license_file (never with license)
    assert 'GNU GENERAL PUBLIC LICENSE' in license_text and 'Version 3, 29 June 2007' in license_text
    assert role_readme.startswith('# chefcloud.pgindex.pgindex')
    # what meta/execution-environment.yml points at ships too
    names = members(tarball)
    for path in ('requirements.txt', 'bindep.txt', 'meta/execution-environment.yml', 'meta/runtime.yml',
                 'playbooks/deploy_indexes.yml', 'changesets/001_franchise_indexes.yml'):
        assert path in names, path

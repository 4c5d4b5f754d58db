"""Every module documents its attributes through the chefcloud.pgindex.attributes fragment (check mode with what it
does, diff mode, platform posix) and a version_added no later than the collection's version: read back as users
read them, with ansible-doc --json."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
MODULES = sorted(p.stem for p in (ROOT / 'plugins' / 'modules').glob('*.py') if not p.name.startswith('_'))


@pytest.fixture(scope='module')
def docs():
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / 'ansible.cfg'), ANSIBLE_NOCOLOR='1')
    proc = subprocess.run([str(BIN / 'ansible-doc'), '--json', '-t', 'module']
                          + ['chefcloud.pgindex.%s' % m for m in MODULES],
                          cwd=str(ROOT), env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    return {name.split('.')[-1]: data['doc'] for name, data in json.loads(proc.stdout).items()}


@pytest.mark.parametrize('module', MODULES)
def test_attributes_say_what_check_and_diff_mode_do(docs, module):
    doc = docs[module]
    attributes = doc['attributes']
    # the fragment's wording (ansible-doc merges fragments and drops extends_documentation_fragment)
    assert 'connects to PostgreSQL with psycopg2' in attributes['platform']['description']
    assert attributes['platform']['platforms'] == 'posix'
    for name in ('check_mode', 'diff_mode'):
        assert attributes[name]['support'] in ('full', 'partial', 'none'), (name, attributes[name])
        assert attributes[name]['description'] and attributes[name]['details'], name
    if attributes['check_mode']['support'] == 'partial':
        assert 'skipped' in ' '.join(attributes['check_mode']['details'])


@pytest.mark.parametrize('module', MODULES)
def test_version_added_is_a_released_or_the_next_version(docs, module):
    galaxy = yaml.safe_load((ROOT / 'galaxy.yml').read_text())['version']
    added = docs[module]['version_added']
    assert tuple(map(int, added.split('.'))) <= tuple(map(int, galaxy.split('.'))), (added, galaxy)

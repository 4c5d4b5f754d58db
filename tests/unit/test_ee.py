"""The execution environment (ee/execution-environment.yml, meta/execution-environment.yml, bindep.txt).

No container runtime or registry here, so the image is not built. What is checked is everything up to it:
`ansible-builder create` accepts the definition and writes the build context (as `make ee-context` does), the
context's galaxy stage installs the collection from its artifact offline (the same ansible-galaxy command
the Containerfile runs, from the same directory), and ansible-builder's own introspection script, run on
that installed collection, yields psycopg2-binary and the system packages the final stage installs.
"""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
EE_FILE = ROOT / 'ee' / 'execution-environment.yml'


def run(*args, cwd=ROOT, env=None):
    proc = subprocess.run([str(a) for a in args], cwd=str(cwd), capture_output=True, text=True, timeout=300,
                          check=False, env=env)
    assert proc.returncode == 0, '%s\n%s%s' % (' '.join(map(str, args)), proc.stdout, proc.stderr)
    return proc.stdout


def galaxy_version():
    return yaml.safe_load((ROOT / 'galaxy.yml').read_text())['version']


@pytest.fixture(scope='module')
def ee(tmp_path_factory):
    """`make ee-context` in a temporary directory: the artifact staged next to a copy of the EE definition,
    then ansible-builder create. Returns the build context directory."""
    tmp = tmp_path_factory.mktemp('ee')
    run(BIN / 'ansible-galaxy', 'collection', 'build', '--output-path', tmp / 'dist', ROOT)
    (artifact,) = (tmp / 'dist').glob('chefcloud-pgindex-*.tar.gz')
    assert artifact.name == 'chefcloud-pgindex-%s.tar.gz' % galaxy_version()
    definition = tmp / 'ee'
    definition.mkdir()
    shutil.copy(EE_FILE, definition)
    shutil.copy(artifact, definition / 'chefcloud-pgindex.tar.gz')
    context = tmp / 'context'
    run(BIN / 'ansible-builder', 'create', '-f', definition / EE_FILE.name, '--context', context,
        '--output-filename', 'Containerfile')
    return context


@pytest.fixture(scope='module')
def installed(ee, tmp_path_factory):
    """The galaxy stage of the Containerfile, run here: its ansible-galaxy command, from _build (its WORKDIR)."""
    collections = tmp_path_factory.mktemp('ee-collections')
    containerfile = (ee / 'Containerfile').read_text()
    opts = re.search(r'^ARG ANSIBLE_GALAXY_CLI_COLLECTION_OPTS="(.*)"$', containerfile, re.M).group(1)
    env = {k: v for k, v in os.environ.items() if not k.startswith('ANSIBLE_')}
    env['ANSIBLE_GALAXY_DISABLE_GPG_VERIFY'] = '1'
    run(BIN / 'ansible-galaxy', 'collection', 'install', *opts.split(), '-r', 'requirements.yml',
        '--collections-path', collections, cwd=ee / '_build', env=env)
    return collections


def test_containerfile_installs_ansible_core_runner_and_the_collection(ee):
    containerfile = (ee / 'Containerfile').read_text()
    assert 'ARG EE_BASE_IMAGE="quay.io/centos/centos:stream9"' in containerfile
    assert 'ARG ANSIBLE_INSTALL_REFS="ansible-core==2.19.14 ansible-runner==2.4.3"' in containerfile
    assert 'ARG ANSIBLE_GALAXY_CLI_COLLECTION_OPTS="--offline"' in containerfile
    assert ('RUN ANSIBLE_GALAXY_DISABLE_GPG_VERIFY=1 ansible-galaxy collection install '
            '$ANSIBLE_GALAXY_CLI_COLLECTION_OPTS -r requirements.yml --collections-path "/usr/share/ansible/collections"'
            ) in containerfile
    assert 'COPY _build /build' in containerfile
    assert 'RUN $PYCMD /output/scripts/introspect.py introspect' in containerfile
    assert 'RUN /output/scripts/install-from-bindep' in containerfile
    assert 'RUN $PKGMGR -y module enable postgresql:16' in containerfile
    # The collection's artifact is in the context, where the galaxy requirements point.
    requirements = yaml.safe_load((ee / '_build' / 'requirements.yml').read_text())
    assert requirements == {'collections': [{'name': 'collections/chefcloud-pgindex.tar.gz', 'type': 'file'}]}
    assert (ee / '_build' / 'collections' / 'chefcloud-pgindex.tar.gz').is_file()
    # Python and system requirements come from the collection (introspection), not from the definition.
    assert not (ee / '_build' / 'requirements.txt').exists() and not (ee / '_build' / 'bindep.txt').exists()


def test_galaxy_stage_installs_the_collection_offline(installed):
    collection = installed / 'ansible_collections' / 'chefcloud' / 'pgindex'
    manifest = yaml.safe_load((collection / 'MANIFEST.json').read_text())
    assert manifest['collection_info']['version'] == galaxy_version()
    for path in ('meta/execution-environment.yml', 'requirements.txt', 'bindep.txt', 'meta/runtime.yml',
                 'playbooks/deploy_indexes.yml', 'roles/pgindex/meta/argument_specs.yml'):
        assert (collection / path).is_file(), path
    # galaxy.yml's manifest allow-list keeps the EE definition, the AWX configuration and the build output out of the artifact.
    for path in ('ee', 'awx', 'build', 'tools', '.venv', 'requirements-awx.txt'):
        assert not (collection / path).exists(), path


def test_introspection_yields_psycopg2_and_the_system_packages(ee, installed, tmp_path):
    pip, bindep = tmp_path / 'requirements.txt', tmp_path / 'bindep.txt'
    # The builder stage's command, on the collections the galaxy stage installed.
    run(sys.executable, ee / '_build' / 'scripts' / 'introspect.py', 'introspect', installed,
        '--write-pip=%s' % pip, '--write-bindep=%s' % bindep)
    pins = [line.split('#')[0].strip() for line in (ROOT / 'requirements.txt').read_text().splitlines()]
    wanted_pip = [p for p in pins if p]
    assert [line.split('#')[0].strip() for line in pip.read_text().splitlines() if line] == wanted_pip
    assert any(p.startswith('psycopg2-binary==') for p in wanted_pip)
    assert any(p.startswith('pglast==') for p in wanted_pip)
    packages = [line.split('#')[0].strip() for line in bindep.read_text().splitlines() if line]
    assert packages == ['libpq [platform:rpm]', 'postgresql [platform:rpm]',
                        'libpq5 [platform:dpkg]', 'postgresql-client [platform:dpkg]']
    # bindep parses it (exit 2 would be a syntax error) and picks this machine's (dpkg) packages.
    listed = run(BIN / 'bindep', '-l', 'newline', '-f', bindep, cwd=tmp_path)
    if Path('/usr/bin/dpkg').exists():
        assert sorted(listed.split()) == ['libpq5', 'postgresql-client']


def test_collection_ee_metadata_names_files_that_exist():
    meta = yaml.safe_load((ROOT / 'meta' / 'execution-environment.yml').read_text())
    assert meta['version'] == 1
    assert set(meta['dependencies']) == {'python', 'system'}
    for path in meta['dependencies'].values():
        assert not Path(path).is_absolute() and (ROOT / path).is_file(), path

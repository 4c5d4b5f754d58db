#!/usr/bin/env python
"""Offline stand-in for ansible-test's pip bootstrap script (get-pip.py).

``ansible-test ... --venv`` creates its virtual environments with ``--without-pip``
and then downloads https://ci-files.testing.ansible.com/ansible-test/get-pip-<ver>.py
to ``~/.ansible/test/cache/get_pip_<ver>.py`` to put pip into them.  That host is
not reachable from our build machines, but ansible-test uses the cached file when it
exists, so tools/lint.sh copies this script there.

It is run by ansible-test's quiet_pip.py inside the new venv as
``python <quiet_pip> [pip options...] pip==X.Y [--no-setuptools] [--no-wheel]`` and:

1. bootstraps pip from the interpreter's bundled wheel (``python -m ensurepip``),
   which needs no network at all;
2. runs ``python -m pip install <the same arguments>`` so the venv ends up with
   exactly the pip version ansible-test pinned.  get-pip.py-only flags
   (``--no-setuptools``, ``--no-wheel``) are dropped.  The wheels are taken from
   a wheelhouse next to this file (``pip-wheels/``) when they are there, without
   any network access; otherwise they are first downloaded into it with pip's
   normal configuration (/etc/pip.conf, ~/.config/pip/pip.conf, PIP_* variables:
   index mirror, find-links, constraints, certificates), except ``PIP_CONFIG_FILE``,
   which is removed so a caller pointing it at an empty/blocking file cannot stop
   the bootstrap from reaching the configured package index.  So only the very
   first bootstrap on a machine needs the package index.

Not part of the collection: galaxy.yml's manifest allow-list leaves tools/ out of the artifact.
"""

from __future__ import annotations

import os
import subprocess
import sys

GET_PIP_ONLY_OPTIONS = frozenset(('--no-setuptools', '--no-wheel'))


def main() -> int:
    """Bootstrap pip with ensurepip, then install the requested packages with it."""
    args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY_OPTIONS]

    env = os.environ.copy()
    env.pop('PIP_CONFIG_FILE', None)

    # ensurepip ignores the network and any pip configuration; it installs the pip wheel
    # bundled with this Python (into the active interpreter, i.e. the new venv).
    # Older pips in the venv are fine: the second step upgrades/downgrades to the pinned one.
    try:
        subprocess.run([sys.executable, '-m', 'pip', '--version'], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except subprocess.CalledProcessError:
        subprocess.run([sys.executable, '-m', 'ensurepip', '--default-pip'], env=env, check=True,
                       stdout=subprocess.DEVNULL)

    requirements = [arg for arg in args if not arg.startswith('-')]
    if not requirements:
        return 0  # nothing to install beyond pip itself

    wheelhouse = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'pip-wheels')
    offline_install = [sys.executable, '-m', 'pip', 'install', '--no-index', '--find-links', wheelhouse] + args

    if os.path.isdir(wheelhouse):
        result = subprocess.run(offline_install, env=env, check=False,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if result.returncode == 0:
            return 0

    # ansible-test only passes flags without values (--disable-pip-version-check) and requirement specs.
    options = [arg for arg in args if arg.startswith('-')]
    download = [sys.executable, '-m', 'pip', 'download', '--no-deps', '--dest', wheelhouse] + options + requirements
    result = subprocess.run(download, env=env, check=False)
    if result.returncode != 0:
        return result.returncode

    return subprocess.run(offline_install, env=env, check=False).returncode


if __name__ == '__main__':
    sys.exit(main())

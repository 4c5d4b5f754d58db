# -*- coding: utf-8 -*-
# Copyright: ChefCloud Platform Engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared fixtures of the netns scenario's verifier (molecule verify, testinfra).

create.yml records the topology in $MOLECULE_EPHEMERAL_DIRECTORY/netns.json: addresses, paths of the
PostgreSQL server, of the logs, of the df trace and of the report.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re

import pytest
import yaml

SCENARIO_DIR = os.environ.get('MOLECULE_SCENARIO_DIRECTORY') or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO_DIR = os.path.realpath(os.path.join(SCENARIO_DIR, '..', '..', '..'))
CHANGESET = os.path.join(REPO_DIR, 'changesets', '001_franchise_indexes.yml')

# "2026-11-28 18:25:53,006 p=14852 u=root n=ansible INFO| TASK [role : name] ****"
_LOG_TASK = re.compile(r'\| TASK \[(?:[\w.]+ : )?(?P<task>.+?)\] \**\s*$')
_LOG_RESULT = re.compile(r'\| (?P<status>ok|changed|skipping|failed|fatal): \[(?P<target>[^\]]+)\]')


@pytest.fixture(scope='session')
def topology():
    """What create.yml made (netns.json)."""
    path = os.path.join(os.environ['MOLECULE_EPHEMERAL_DIRECTORY'], 'netns.json')
    with open(path) as handle:
        return json.load(handle)


@pytest.fixture(scope='session')
def changeset():
    """The change set converge.yml deploys."""
    with open(CHANGESET) as handle:
        return yaml.safe_load(handle)


@pytest.fixture(scope='session')
def task_targets(topology):
    """{task name: [result targets, such as 'db' or 'db -> bastion(10.213.0.2)']} from every run's ansible.log."""
    targets, task = {}, None
    with open(topology['ansible_log']) as handle:
        for line in handle:
            match = _LOG_TASK.search(line)
            if match:
                task = match.group('task')
                continue
            match = _LOG_RESULT.search(line)
            if match and task and match.group('status') != 'skipping':
                targets.setdefault(task, []).append(match.group('target'))
    return targets


@pytest.fixture(scope='session')
def repo_dir():
    """The checkout the scenario runs from."""
    return REPO_DIR


@pytest.fixture(scope='session')
def psql_admin(topology):
    """psql_admin(host, query): one query on db's database as postgres, through the Unix socket as the
    server's OS user (peer authentication, mapped in pg_ident.conf); only works on db."""
    pg = topology['postgres']

    def run(host, query):
        return host.check_output(
            'cd / && runuser -u %s -- %s -X -A -t -q -v ON_ERROR_STOP=1 -h %s -p %s -U postgres -d %s -c %s',
            pg['os_user'], pg['bin_dir'] + '/psql', pg['socket_dir'], str(pg['port']), pg['database'], query)

    return run

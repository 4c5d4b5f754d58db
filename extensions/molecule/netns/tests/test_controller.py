# -*- coding: utf-8 -*-
# Copyright: ChefCloud Platform Engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""On the controller (this machine's root namespace): what it can reach, the report, the logs."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import glob
import json
import os
import socket

import pytest

testinfra_hosts = ['local://']

REPORT = '001_franchise_indexes.db.latest'   # each run also keeps <change set>.<host>.<start time>.json


def _connect(address, port):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(5)
    try:
        sock.connect((address, port))
        return sock.recv(64)
    finally:
        sock.close()


def test_controller_has_no_route_to_db(host, topology):
    route = host.run('ip route get %s', topology['db']['address'])
    assert route.rc != 0 and 'No route to host' in route.stderr, (route.stdout, route.stderr)
    assert host.check_output('ip route show type unreachable %s', topology['db']['subnet'])
    # The unreachable route answers locally, at once: no packet leaves the machine.
    for port in (topology['postgres']['port'], 22):
        with pytest.raises(OSError) as failure:
            _connect(topology['db']['address'], port)
        assert failure.value.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH), failure.value


def test_controller_reaches_the_bastion_sshd(topology):
    assert _connect(topology['bastion']['address'], 22).startswith(b'SSH-2.0-OpenSSH')


def test_db_answers_ssh_only_through_the_bastion(host, topology):
    ssh = 'ssh -F %s -o ControlPath=none ' % topology['ssh_config']
    assert host.check_output(ssh + 'db ip netns identify') == topology['namespaces']['db']
    direct = host.run(ssh + '-o ProxyJump=none db true')
    assert direct.rc != 0


def test_modules_ran_on_the_bastion_and_df_on_db(task_targets):
    for task in ('Run the preflight checks (read only)', 'Verify the indexes'):
        assert task_targets.get(task), 'task %r never ran' % task
        assert all(target.startswith('db -> bastion') for target in task_targets[task]), (task, task_targets[task])
    df = task_targets.get('Measure the database host (its CPU count, and free space with df -P -B1 for every path '
                          'the build writes to)')
    assert df and set(df) == set(['db']), df


def _run_records(topology):
    """The run records of the scenario's deploys (converge, idempotence), oldest first, without 'latest'."""
    found = []
    for path in glob.glob(os.path.join(topology['report_dir'], '001_franchise_indexes.db.*.json')):
        if not path.endswith('.latest.json'):
            with open(path) as handle:
                found.append(json.load(handle))
    return sorted(found, key=lambda report: report['started_at'])


def test_report_written_on_the_controller(topology, changeset):
    assert os.path.getsize(os.path.join(topology['report_dir'], REPORT + '.md')) > 0
    # converge built the six and verified them: its run record says so
    built = [r for r in _run_records(topology) if any(row['action'] == 'created' for row in r['indexes'])]
    assert built, 'no run record of the converge that built the indexes in %s' % topology['report_dir']
    report = built[-1]
    assert report['host'] == 'db'
    assert report['database'] == topology['postgres']['database']
    assert report['state'] == 'present'
    assert report['ok'] is True and report['verified'] is True, report['problems']
    rows = dict((row['name'], row) for row in report['indexes'])
    assert sorted(rows) == sorted(index['name'] for index in changeset['pgindex_indexes'])
    for name, row in rows.items():
        assert row['valid'] is True, (name, row)
        assert row['plan'] == 'passed', (name, row)
    # the idempotence run after it found them in place: the short path, nothing built, nothing re-verified
    with open(os.path.join(topology['report_dir'], REPORT + '.json')) as handle:
        latest = json.load(handle)
    assert latest['ok'] is True and latest['build']['short_path'] is True and latest['verified'] is False
    assert [row['action'] for row in latest['indexes']] == ['none'] * len(changeset['pgindex_indexes'])


def test_check_mode_changed_nothing(topology, changeset):
    """check_mode_changed_nothing.yml (side_effect, right after the check step) recorded what it saw."""
    path = os.path.join(topology['dir'], 'check_mode.json')
    if not os.path.exists(path):
        pytest.skip('no check step in this run (molecule test runs check, then side_effect)')
    with open(path) as handle:
        after_check = json.load(handle)
    tables = sorted(set(index['table'] for index in changeset['pgindex_indexes']))
    assert after_check['indexes'] == sorted(table + '_pkey' for table in tables)
    assert after_check['invalid'] == 0


def test_password_never_logged(topology):
    with open(topology['password_file']) as handle:
        password = handle.read().strip()
    assert len(password) >= 32
    for secret_file in (topology['password_file'], topology['pgpass_file']):
        assert os.stat(secret_file).st_mode & 0o077 == 0, secret_file
    inventory = os.path.join(os.environ['MOLECULE_EPHEMERAL_DIRECTORY'], 'inventory')
    logs = [topology['ansible_log'], topology['postgres']['log'], topology['df_trace']] + topology['sshd_logs']
    logs += [os.path.join(root, name) for root, _dirs, names in os.walk(inventory) for name in names]
    logs += [os.path.join(topology['report_dir'], name) for name in os.listdir(topology['report_dir'])]
    for path in logs:
        with open(path, 'rb') as handle:
            assert password.encode() not in handle.read(), 'the database password is in %s' % path

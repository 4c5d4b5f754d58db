# -*- coding: utf-8 -*-
# Copyright: ChefCloud Platform Engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""On the bastion (pgindex_module_host): it runs the modules and is the only way to db."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

testinfra_hosts = ['bastion']


def _psql(host, topology, passfile):
    pg = topology['postgres']
    return host.run(
        'cd / && PGPASSFILE=%s PGCONNECT_TIMEOUT=5 %s -X -A -t -w -c %s %s',
        passfile, pg['bin_dir'] + '/psql', 'SELECT current_user, inet_client_addr(), current_database()',
        'host=%s port=%s dbname=%s user=%s' % (topology['db']['address'], pg['port'], pg['database'], pg['user']))


def test_connection_is_the_bastion_namespace(host, topology):
    assert host.check_output('ip netns identify') == topology['namespaces']['bastion']


def test_bastion_does_not_route(host):
    assert host.sysctl('net.ipv4.ip_forward') == 0


def test_module_interpreter_has_psycopg2(host, repo_dir):
    python = os.path.join(repo_dir, '.venv', 'bin', 'python')
    assert host.run('%s -c %s', python, 'import psycopg2').rc == 0


def test_bastion_reaches_postgres_with_the_password(host, topology):
    result = _psql(host, topology, topology['pgpass_file'])
    assert result.rc == 0, result.stderr
    pg = topology['postgres']
    assert result.stdout.strip() == '%s|%s|%s' % (pg['user'], topology['bastion']['db_side_address'], pg['database'])


def test_bastion_needs_the_password(host, topology):
    result = _psql(host, topology, '/dev/null')
    assert result.rc != 0
    assert 'no password supplied' in result.stderr


def test_report_is_on_the_controller_not_written_by_the_bastion(task_targets):
    """roles/pgindex/tasks/report.yml writes the report files with chefcloud.pgindex.pg_index_report, an action
    plugin that writes on the controller itself (no module, no connection). Here bastion and controller share
    one filesystem, so a path check on the bastion would prove nothing: the log shows the task ran for db and
    was never delegated to the bastion, where every module of the role runs."""
    task = "Write the report files on the controller (this run's and latest, JSON and Markdown; sets pgindex_report)"
    assert task_targets.get(task), 'task %r never ran' % task
    assert set(task_targets[task]) == set(['db']), (task, task_targets[task])

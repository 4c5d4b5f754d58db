# -*- coding: utf-8 -*-
# Copyright: ChefCloud Platform Engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""On the database host (ssh through the bastion): the indexes, df, and who may connect."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

testinfra_hosts = ['db']


def test_connection_is_the_db_namespace(host, topology):
    assert host.check_output('ip netns identify') == topology['namespaces']['db']


def test_six_indexes_valid_and_as_defined(host, topology, psql_admin, changeset):
    expected = dict((index['name'], index) for index in changeset['pgindex_indexes'])
    rows = psql_admin(host, (
        "SELECT c.relname, t.relname, i.indisvalid, i.indisready, i.indislive, pg_get_indexdef(c.oid) "
        "FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' AND c.relname IN (%s) ORDER BY 1"
        % ', '.join("'%s'" % name for name in expected))).splitlines()
    found = dict((row.split('|')[0], row.split('|')) for row in rows)
    assert sorted(found) == sorted(expected) and len(found) == 6
    for name, (_name, table, valid, ready, live, definition) in found.items():
        assert table == expected[name]['table'], name
        assert (valid, ready, live) == ('t', 't', 't'), '%s: valid %s, ready %s, live %s' % (name, valid, ready, live)
        assert definition.endswith('USING btree (%s)' % ', '.join(expected[name]['columns'])), definition


def test_no_invalid_index_anywhere(host, psql_admin):
    assert psql_admin(host, 'SELECT count(*) FROM pg_index WHERE NOT indisvalid OR NOT indisready') == '0'


def test_df_ran_on_the_db_host(host, topology):
    """The role's preflight runs df -P -B1 on the play's host: the df tracer (first in PATH of both sshd)
    recorded every call with its network namespace, and they all ran in db's."""
    trace = host.file(topology['df_trace'])
    assert trace.exists, 'df never ran through the sshd of bastion or db'
    calls = [line for line in trace.content_string.splitlines() if line.strip()]
    assert calls
    for call in calls:
        assert ' netns=%s ' % topology['namespaces']['db'] in call, call
        assert ' user=root ' in call, call
    # the role's one measuring command passes each path after "--" (roles/pgindex/vars/main.yml)
    data_dir_calls = [call for call in calls if call.endswith('args=-P -B1 -- %s' % topology['postgres']['data'])]
    assert data_dir_calls, 'no df of the data directory %s: %s' % (topology['postgres']['data'], calls)


def test_postgres_listens_on_the_db_address_only(host, topology):
    listening = host.check_output('ss -H -t -l -n')
    sockets = sorted(set(re.findall(r'(\S+):%d\b' % topology['postgres']['port'], listening)))
    assert sockets == [topology['db']['address']]


def test_pg_hba_lets_in_only_the_bastion_with_a_password(host, topology, psql_admin):
    rules = psql_admin(host, (
        "SELECT type, array_to_string(database, ','), array_to_string(user_name, ','), coalesce(address, ''), "
        "coalesce(netmask, ''), auth_method FROM pg_hba_file_rules WHERE error IS NULL ORDER BY rule_number"))
    pg = topology['postgres']
    assert rules.splitlines() == [
        'local|all|postgres|||peer',
        'host|%s|%s|%s|255.255.255.255|scram-sha-256' % (pg['database'], pg['user'], topology['bastion']['db_side_address']),
    ]
    assert psql_admin(host, 'SELECT count(*) FROM pg_hba_file_rules WHERE error IS NOT NULL') == '0'


def test_deploy_role_owns_the_tables_and_is_no_superuser(host, topology, psql_admin, changeset):
    pg = topology['postgres']
    tables = sorted(set(index['table'] for index in changeset['pgindex_indexes']))
    owners = psql_admin(host, (
        "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public' AND tablename IN (%s)"
        % ', '.join("'%s'" % table for table in tables)))
    assert owners == pg['user']
    role = psql_admin(host, (
        "SELECT rolsuper, rolcreaterole, rolcreatedb, rolpassword LIKE 'SCRAM-SHA-256$%%' FROM pg_authid "
        "WHERE rolname = '%s'" % pg['user']))
    assert role == 'f|f|f|t'


def test_db_host_itself_is_refused_over_tcp(host, topology):
    """pg_hba.conf has no line for db's own address: refused before any password is asked."""
    pg = topology['postgres']
    result = host.run(
        'cd / && PGPASSFILE=/dev/null PGCONNECT_TIMEOUT=5 %s -X -w -c %s %s',
        pg['bin_dir'] + '/psql', 'SELECT 1',
        'host=%s port=%s dbname=%s user=%s' % (topology['db']['address'], pg['port'], pg['database'], pg['user']))
    assert result.rc != 0
    assert 'no pg_hba.conf entry for host "%s"' % topology['db']['address'] in result.stderr


def test_deploy_role_connections_came_from_the_bastion(host, topology):
    pg = topology['postgres']
    log = host.file(pg['log']).content_string
    authorized = [line for line in log.splitlines()
                  if 'connection authorized: user=%s ' % pg['user'] in line]
    assert authorized, 'no connection of %s in %s' % (pg['user'], pg['log'])
    for line in authorized:
        assert '] %s(' % topology['bastion']['db_side_address'] in line, line

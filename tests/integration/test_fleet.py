"""Many clusters: a canary first, then the others; a failure on the canary stops the fleet."""
import uuid

import pytest
from psycopg2 import sql

from conftest import Database
from helpers.playbooks import SIX, playbook

INVENTORY = """
all:
  children:
    pgindex_bastions:
      hosts:
        localhost:
    pgindex_databases:
      hosts:
        cluster-a:
          pgindex_connection: {db: %s}
        cluster-b:
          pgindex_connection: {db: %s}
  vars:
    ansible_connection: local
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
"""


@pytest.fixture
def two_clusters(db, tmp_path):
    """Two databases standing for two clusters, and an inventory naming them (canary first)."""
    names = ['fleet_%s_%s' % (tag, uuid.uuid4().hex[:8]) for tag in ('a', 'b')]
    for name in names:
        db.query(sql.SQL('CREATE DATABASE {} TEMPLATE pgindex_template').format(sql.Identifier(name)))
    inventory = tmp_path / 'fleet.yml'
    inventory.write_text(INVENTORY % tuple(names))
    yield names, inventory
    for name in names:
        db.query(sql.SQL('DROP DATABASE IF EXISTS {} WITH (FORCE)').format(sql.Identifier(name)))


def in_cluster(db, name, statement, args=None):
    """Run one statement in the database ``name`` of the test server; its rows."""
    return Database(db.server, name).query(statement, args)


def indexes_in(db, name):
    return [r[0] for r in in_cluster(db, name, 'SELECT indexname FROM pg_indexes WHERE indexname = ANY(%s)'
                                               ' ORDER BY 1', (SIX,))]


def test_canary_then_the_rest_of_the_fleet(db, two_clusters):
    names, inventory = two_clusters
    rc, out = playbook(db, 'playbooks/deploy_indexes.yml', '-i', str(inventory), '-e', 'pgindex_verify=false')
    assert rc == 0, out
    assert indexes_in(db, names[0]) == sorted(SIX) and indexes_in(db, names[1]) == sorted(SIX)
    assert 'Clusters done: cluster-a (1 of 2)' in out
    assert 'Clusters done: cluster-a, cluster-b (2 of 2)' in out


def test_a_failure_on_the_canary_stops_the_fleet(db, two_clusters):
    names, inventory = two_clusters
    in_cluster(db, names[0], 'DROP TABLE payments')   # the canary cluster lacks a table of the change set
    rc, out = playbook(db, 'playbooks/deploy_indexes.yml', '-i', str(inventory), '-e', 'pgindex_verify=false')
    assert rc != 0
    assert 'failed on cluster cluster-a' in out and 'not started: cluster-b' in out
    assert indexes_in(db, names[1]) == []     # the second cluster was never touched


def test_check_mode_on_the_fleet_changes_nothing(db, two_clusters):
    names, inventory = two_clusters
    rc, out = playbook(db, 'playbooks/deploy_indexes.yml', '-i', str(inventory), '--check', '--diff')
    assert rc == 0, out
    assert indexes_in(db, names[0]) == [] and indexes_in(db, names[1]) == []
    assert out.count('would run: CREATE INDEX CONCURRENTLY "idx_fr_overview_org_period"') == 2
    assert '(2 of 2) - check mode, nothing changed' in out

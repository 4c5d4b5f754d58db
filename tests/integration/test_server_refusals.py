"""Servers the module must refuse: standbys, and 14.0-14.3 for concurrent builds."""
import pytest

from helpers.modules import run_module
from helpers.servers import params, temporary_server

OVERVIEW = dict(name='idx_fr_overview_org_period', table='franchise_overview', columns=['org_id', 'period'])


@pytest.fixture
def standby(pg_server):
    with temporary_server('standby', standby_of=pg_server) as server:
        yield server


def test_standby_is_refused_before_anything_runs(standby):
    for state in ('present', 'absent'):
        failed, result = run_module('pg_concurrent_index', dict(params(standby, 'pgindex_template'), state=state, **OVERVIEW))
        assert failed
        assert result['msg'].startswith('the server is a standby (in recovery)')


@pytest.fixture(scope='module')
def pg143():
    with temporary_server('test-pg143', version='14.3.0-beta.6') as server:
        server.psql('CREATE TABLE franchise_overview (org_id text, period text)')
        yield server


def test_concurrent_build_refused_on_14_3(pg143):
    assert pg143.version() == '14.3'
    for check_mode in (True, False):
        failed, result = run_module('pg_concurrent_index', dict(params(pg143, 'postgres'), **OVERVIEW),
                                    check_mode=check_mode)
        assert failed and 'refusing to build concurrently on PostgreSQL 14.3' in result['msg']
    assert pg143.psql("SELECT count(*) FROM pg_indexes WHERE tablename = 'franchise_overview'").strip() == '0'
    # dropping is still allowed there
    pg143.psql('CREATE INDEX idx_fr_overview_org_period ON franchise_overview (org_id, period)')
    failed, result = run_module('pg_concurrent_index', dict(params(pg143, 'postgres'), state='absent', **OVERVIEW))
    assert not failed and result['action'] == 'dropped'

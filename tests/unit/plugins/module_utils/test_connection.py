"""module_utils/connection.py against a live server."""
import pytest

from ansible_collections.chefcloud.pgindex.plugins.module_utils import connection
from ansible_collections.chefcloud.pgindex.plugins.module_utils.errors import ConnectError
from pgserver import free_port


def test_connects_in_autocommit_with_application_name(db):
    conn = connection.connect(db.params, 'chefcloud.pgindex/test')
    try:
        assert conn.autocommit is True
        with conn.cursor() as cur:
            cur.execute('SELECT application_name, datname FROM pg_stat_activity WHERE pid = pg_backend_pid()')
            assert cur.fetchone() == ('chefcloud.pgindex/test', db.name)
    finally:
        conn.close()


def test_unset_options_fall_back_to_libpq_environment(db, monkeypatch):
    for key, value in db.env.items():
        monkeypatch.setenv(key, value)
    kwargs = connection.libpq_params({'connect_params': {}}, 'x')
    assert 'host' not in kwargs and 'port' not in kwargs and 'dbname' not in kwargs
    conn = connection.connect({'connect_params': {}}, 'chefcloud.pgindex/test')
    try:
        assert conn.info.dbname == db.name
        assert conn.info.port == db.port
    finally:
        conn.close()


def test_refused_connection_is_one_clear_message_without_password(monkeypatch):
    monkeypatch.delenv('PGPASSWORD', raising=False)
    port = free_port()
    params = dict(login_host='127.0.0.1', login_port=port, login_user='deployer', db='prod',
                  login_password='s3cret-Pa55', connect_params={})
    with pytest.raises(ConnectError) as err:
        connection.connect(params, 'chefcloud.pgindex/test')
    msg = err.value.msg
    assert 'host=127.0.0.1 port=%d dbname=prod user=deployer' % port in msg
    assert 'Connection refused' in msg
    assert 's3cret-Pa55' not in msg
    assert '\n' not in msg


def test_connect_params_cannot_repeat_module_options():
    with pytest.raises(ConnectError) as err:
        connection.libpq_params({'login_port': 5432, 'connect_params': {'port': 5433}}, 'x')
    assert 'port' in err.value.msg


def test_connect_params_pass_through_and_may_replace_application_name(db):
    params = dict(db.params, connect_params={'application_name': 'custom-app', 'options': '-c work_mem=7MB'})
    conn = connection.connect(params, 'chefcloud.pgindex/test')
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT current_setting('application_name'), current_setting('work_mem')")
            assert cur.fetchone() == ('custom-app', '7MB')
    finally:
        conn.close()


def test_session_role_is_set(db):
    db.query('CREATE ROLE "Index Owner" NOLOGIN')
    conn = connection.connect(dict(db.params, session_role='Index Owner', connect_params={}), 'x')
    try:
        with conn.cursor() as cur:
            cur.execute('SELECT current_user')
            assert cur.fetchone()[0] == 'Index Owner'
    finally:
        conn.close()
        db.query('DROP ROLE "Index Owner"')


def test_unknown_session_role_is_a_clear_error(db):
    with pytest.raises(ConnectError) as err:
        connection.connect(dict(db.params, session_role='no_such_role', connect_params={}), 'x')
    assert 'no_such_role' in err.value.msg and 'does not exist' in err.value.msg

"""The pg_index_set action plugin against real servers: one controller-side loop with live progress,
a dead job detected, an interrupted or killed controller whose job cancels its builds."""
import glob
import json
import os
import re
import signal
import subprocess
import time

from helpers.playbooks import BIN, ROOT, recap
from helpers.sessions import OldSnapshot, wait_until

CHANGESET = ('pgindex_changeset_name: loop\n'
             'pgindex_indexes:\n'
             '  - {name: idx_a, table: payments, columns: [org_id]}\n'
             '  - {name: idx_b, table: payments, columns: [status]}\n'
             '  - {name: idx_c, table: purchase_orders, columns: [org_id]}\n')
NAMES = ['idx_a', 'idx_b', 'idx_c']
QUIET = ['-e', 'pgindex_verify=false', '-e', '{"pgindex_preflight_checks": []}', '-e', 'pgindex_progress_interval=1']
BUILD_WAITING = "SELECT EXISTS (SELECT 1 FROM pg_stat_progress_create_index WHERE phase LIKE 'waiting for old%%')"
OUR_SESSIONS = ("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'chefcloud.pgindex%%'"
                " AND pid <> pg_backend_pid()")


def start(db, tmp_path, *extra):
    changeset = tmp_path / 'loop.yml'
    changeset.write_text(CHANGESET)
    env = {k: v for k, v in os.environ.items() if not k.startswith(('PG', 'ANSIBLE_'))}
    env.update(db.env, ANSIBLE_CONFIG=str(ROOT / 'ansible.cfg'), ANSIBLE_NOCOLOR='1',
               ANSIBLE_ASYNC_DIR=str(tmp_path / 'async'))
    return subprocess.Popen([str(BIN / 'ansible-playbook'), 'playbooks/deploy_indexes.yml', '-i', 'inventories/local',
                             '-e', 'pgindex_changeset_file=%s' % changeset] + QUIET + list(extra),
                            cwd=str(ROOT), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def finish(proc, timeout=300):
    out = proc.communicate(timeout=timeout)[0]
    return proc.returncode, out


def job_state(tmp_path):
    """The running job's state file (pid, lanes, indexes done), once it exists."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for name in glob.glob(str(tmp_path / 'async' / 'pgindex-*.state.json')):
            try:
                with open(name) as handle:
                    return json.load(handle)
            except ValueError:
                pass
        time.sleep(0.1)
    raise AssertionError('no job state file in %s' % (tmp_path / 'async'))


def invalid_indexes(db):
    return db.query('SELECT indexrelid::regclass::text FROM pg_index WHERE NOT indisvalid')


def test_progress_names_the_blocker_while_a_build_waits_and_the_task_ends_with_the_job(db, tmp_path):
    snapshot = OldSnapshot(db)
    blocker = snapshot.conn.get_backend_pid()
    proc = start(db, tmp_path)
    try:
        wait_until(db, BUILD_WAITING, timeout=120)
        # the loop prints while the build waits: let it see the wait, then release the build
        wait_until(db, "SELECT now() - min(query_start) > interval '3 s' FROM pg_stat_activity"
                       " WHERE application_name LIKE 'chefcloud.pgindex%%' AND wait_event_type = 'Lock'", timeout=60)
    finally:
        snapshot.end()
    rc, out = finish(proc)
    assert rc == 0, out
    assert all(db.index(name)[0] for name in NAMES)
    # one task header for the whole build, progress lines under it
    assert out.count('TASK [chefcloud.pgindex.pgindex : Build the change set') == 1, out
    assert 'Follow the builds' not in out and 'Wait before polling again' not in out
    assert re.search(r'building 3 index\(es\) in the background \(job pid \d+\): \d+ lane\(s\)', out), out
    assert re.search(r'\] \d of 3 done, \d building, elapsed \d+ s, ETA ', out), out
    assert re.search(r'idx_\w on public\.\w+: waiting for old snapshots.*\[waiting for a virtualxid lock: older '
                     r'transactions; blocked by pid %d user=postgres state=idle in transaction transaction age=' % blocker,
                     out), out
    assert re.search(r'job j[\d.]+ ended: 3 of 3 done', out), out
    # the task's result came from the job: nothing of the job's control files is left behind
    assert glob.glob(str(tmp_path / 'async' / 'pgindex-*')) == [], out
    (tmp_path.parent / 'progress-output.txt').write_text(out)


def test_check_mode_runs_in_the_foreground_and_shows_each_estimate(db, tmp_path):
    proc = start(db, tmp_path, '--check')
    rc, out = finish(proc)
    assert rc == 0, out
    assert re.search(r'estimated build \(check mode\): \d+ s in all over \d+ lane\(s\); ', out), out
    for name in NAMES:
        assert re.search(r'%s on public\.\w+: created, estimated \d+ s' % name, out), out
    assert not os.path.exists(str(tmp_path / 'async')) or not glob.glob(str(tmp_path / 'async' / 'j*'))
    assert all(db.index(name) is None for name in NAMES)


def test_a_re_run_with_every_index_identical_starts_no_background_job(db, tmp_path):
    rc, out = finish(start(db, tmp_path, '-e', '{"pgindex_preflight_checks": ["indexes"]}'))
    assert rc == 0, out
    jobs = glob.glob(str(tmp_path / 'async' / 'j*'))
    rc, out = finish(start(db, tmp_path, '-e', '{"pgindex_preflight_checks": ["indexes"]}'))
    assert rc == 0 and recap(out)['changed'] == 0, out
    assert glob.glob(str(tmp_path / 'async' / 'j*')) == jobs   # no new async job
    assert 'in the background' not in out


def _kill_job_process(state):
    os.kill(state['pid'], signal.SIGKILL)


def _kill_job_and_its_wrapper(state):
    os.killpg(os.getpgid(state['pid']), signal.SIGKILL)


def test_a_killed_job_is_detected_and_reported_not_awaited(db, tmp_path):
    for kill in (_kill_job_process, _kill_job_and_its_wrapper):
        for name in NAMES:
            db.query('DROP INDEX IF EXISTS %s' % name)
        snapshot = OldSnapshot(db)
        proc = start(db, tmp_path, '-e', 'pgindex_on_error=continue')
        try:
            wait_until(db, BUILD_WAITING, timeout=120)
            kill(job_state(tmp_path))
            rc, out = finish(proc)
        finally:
            snapshot.end()
        assert rc != 0, out
        flat = ' '.join(out.split())
        assert re.search(r'the build job j[\d.]+ \(pid \d+\) died without a result', flat), out
        not_built = re.search(r'Not built: ([\w, ]+)\.', flat).group(1).split(', ')
        assert not_built and set(not_built) <= set(NAMES)
        for name in not_built:
            assert not (db.index(name) or (False,))[0], (name, flat[flat.find("died without"):][:900])
        # an INVALID index the killed build left is named with the statement that drops it
        for (index,) in invalid_indexes(db):
            assert 'DROP INDEX CONCURRENTLY IF EXISTS "public"."%s"' % index in flat, out
        assert 'Traceback' not in out


def test_ctrl_c_cancels_the_builds_and_leaves_nothing_behind(db, tmp_path):
    snapshot = OldSnapshot(db)
    proc = start(db, tmp_path)
    try:
        wait_until(db, BUILD_WAITING, timeout=120)
        proc.send_signal(signal.SIGINT)
        rc, out = finish(proc)
        assert rc != 0, out
        flat = ' '.join(out.split())
        # ansible-playbook passes Ctrl-C on to its task worker as SIGINT or, when it got there first, as SIGTERM
        assert re.search(r'interrupted \(SIG(INT|TERM)\): cancelled [\w, ]*idx_\w+; not started: [\w, ]+; done before: ', flat), out
        assert invalid_indexes(db) == []
        assert db.query(OUR_SESSIONS)[0][0] == 0
        assert db.query("SELECT count(*) FROM pg_stat_progress_create_index")[0][0] == 0
    finally:
        snapshot.end()
    assert not all((db.index(name) or (False,))[0] for name in NAMES)


def test_a_killed_controller_s_job_cancels_itself_after_the_heartbeat_timeout(db, tmp_path):
    snapshot = OldSnapshot(db)
    proc = start(db, tmp_path, '-e', 'pgindex_heartbeat_timeout=3')
    try:
        wait_until(db, BUILD_WAITING, timeout=120)
        state = job_state(tmp_path)
        os.killpg(proc.pid, signal.SIGKILL)     # ansible-playbook and its workers, not the job (its own session)
        proc.communicate()
        # the job notices the missing heartbeat, cancels its build and drops the INVALID index it left
        wait_until(db, "SELECT count(*) = 0 FROM pg_stat_progress_create_index", timeout=120)
        deadline = time.monotonic() + 60
        while os.path.exists('/proc/%d' % state['pid']) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not os.path.exists('/proc/%d' % state['pid'])
        assert invalid_indexes(db) == []
        assert db.query(OUR_SESSIONS)[0][0] == 0
        [result_file] = glob.glob(str(tmp_path / 'async' / 'j*'))
        with open(result_file) as handle:
            result = json.load(handle)
        assert result['failed'] and 'no heartbeat from the controller' in result['msg'], result
    finally:
        snapshot.end()

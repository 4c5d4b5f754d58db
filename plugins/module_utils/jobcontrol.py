# -*- coding: utf-8 -*-
# Copyright: ChefCloud Platform Engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The background build job and the controller that follows it: never an orphan, never a ghost.

The pg_index_set action plugin starts the module as an async job and passes it ``job`` (the async
directory and a token). Next to the async job file, on the module host:

- ``pgindex-<token>.state.json``: written by the job: its pid, its lanes, the estimates, each index as it
  ends, and every second its builds' progress (pg_stat_progress_create_index, with who blocks a wait),
  read by its monitor thread, so the controller's poll is one ``cat`` and no module run;
- ``pgindex-<token>.heartbeat``: touched by every poll of the controller;
- ``pgindex-<token>.cancel``: created by the controller to cancel the job (Ctrl-C).

The job's monitor thread cancels its own builds (pg_cancel_backend of its CREATE INDEX sessions,
whose failed builds the executor then cleans up with DROP INDEX CONCURRENTLY) and starts no further
index when the cancel file appears or when no heartbeat came for ``heartbeat_timeout`` seconds
(the controller was killed or lost); ``heartbeat_timeout`` 0 (pgindex_detach) only obeys the cancel
file. The controller judges the job dead when its pid is gone and it wrote no result.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import threading
import time

MONITOR_INTERVAL = 0.5


def paths(async_dir, token):
    base = os.path.join(os.path.expanduser(async_dir), 'pgindex-%s' % token)
    return dict(state=base + '.state.json', heartbeat=base + '.heartbeat', cancel=base + '.cancel')


def write_json(path, data):
    """Write atomically: a reader sees the old content or the new one, never half of it."""
    tmp = '%s.%d.tmp' % (path, os.getpid())
    with open(tmp, 'w') as handle:
        json.dump(data, handle, default=str)
    os.rename(tmp, path)


def read_json(path):
    try:
        with open(path) as handle:
            return json.load(handle)
    except (IOError, OSError, ValueError):
        return None


def touch(path):
    with open(path, 'a'):
        pass
    os.utime(path, None)


def remove(*names):
    for name in names:
        try:
            os.remove(name)
        except OSError:
            pass


def pid_alive(pid):
    """Whether process ``pid`` runs (a zombie does not)."""
    try:
        os.kill(pid, 0)
    except OSError as exc:
        if exc.errno == 1:  # EPERM: it exists, owned by another user
            return True
        return False
    try:
        with open('/proc/%d/stat' % pid) as handle:
            return handle.read().rsplit(')', 1)[1].split()[0] not in ('Z', 'X')
    except (IOError, OSError, IndexError):
        return True


def job_status(async_dir, jid, token, cancel=False, heartbeat=True, cleanup=False):
    """What the controller learns in one poll (run on the module host by pg_index_progress).

    Touches the heartbeat (and creates the cancel file when asked) first; then ``finished`` (the async
    job file holds a result), ``alive`` (its pid runs; None before the job wrote its state) and the
    job's ``state`` (pid, lanes, indexes done).
    """
    files = paths(async_dir, token)
    if heartbeat:
        touch(files['heartbeat'])
    if cancel:
        touch(files['cancel'])
    results_file = os.path.join(os.path.expanduser(async_dir), jid)
    data = read_json(results_file)
    finished = data is not None and ('started' not in data or bool(data.get('finished')))
    state = read_json(files['state'])
    alive = None
    if state and state.get('pid'):
        alive = pid_alive(int(state['pid']))
        if not alive and not finished:
            # the job may have written its result between the two reads
            data = read_json(results_file)
            finished = data is not None and ('started' not in data or bool(data.get('finished')))
    if cleanup or finished:
        remove(files['state'], files['heartbeat'], files['cancel'])
    return dict(finished=finished, alive=alive, state=state or {}, results_file=results_file)


CANCEL_BUILDS_QUERY = ('SELECT pg_cancel_backend(p.pid) FROM pg_stat_progress_create_index p'
                       ' WHERE p.pid = ANY(%s)')
RUNNING_BUILDS_QUERY = 'SELECT count(*) FROM pg_stat_progress_create_index p WHERE p.pid = ANY(%s)'


def cancel_builds(conn, pids, wait=0.0, sleep=time.sleep):
    """pg_cancel_backend of the backends among ``pids`` that run a CREATE INDEX (never a cleanup DROP);
    with ``wait``, wait up to that many seconds for them to end. Returns how many still build."""
    pids = [int(p) for p in pids or []]
    if not pids:
        return 0
    deadline = time.monotonic() + wait
    with conn.cursor() as cur:
        cur.execute(CANCEL_BUILDS_QUERY, (pids,))
        while True:
            cur.execute(RUNNING_BUILDS_QUERY, (pids,))
            running = cur.fetchone()[0]
            if not running or time.monotonic() >= deadline:
                return running
            sleep(0.2)


class JobControl(object):
    """The job's side: state file, heartbeat watch, cancellation of its own builds.

    ``connect_monitor`` opens the monitor's own session; ``register`` is given every session the
    builds open (their backend pids are the ones cancelled).
    """

    def __init__(self, async_dir, token, heartbeat_timeout, connect_monitor, clock=time.time, progress=None,
                 row_info=None):
        self.files = paths(async_dir, token)
        # progress(conn) -> the builds' progress rows (module_utils/progress.build_progress), read every second
        self.progress = progress
        # per index name, facts added to each of its progress rows (sort_spills: which phase shares the ETA uses)
        self.row_info = row_info or {}
        self.heartbeat_timeout = float(heartbeat_timeout or 0)
        self.connect_monitor = connect_monitor
        self.clock = clock
        self.reason = None
        self.state = dict(pid=os.getpid(), token=token, started=clock(), done=[], cancelled=None)
        self._conns = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name='pgindex-jobcontrol')
        self._thread.daemon = True
        self._monitor = None
        self._phases = {}

    def start(self, **info):
        self.state.update(info)
        touch(self.files['heartbeat'])
        self._write()
        self._thread.start()
        return self

    def register(self, conn):
        with self._lock:
            self._conns.append(conn)
            # a dead job's builds go on in the server: the controller cancels them by these pids
            self.state.setdefault('backends', []).append(conn.get_backend_pid())
            self._write()
        return conn

    def cancelled(self):
        """Why the job is cancelled, or None."""
        return self.reason

    def index_done(self, result):
        with self._lock:
            keys = ('name', 'schema', 'table', 'action', 'failed', 'msg', 'duration_s')
            self.state['done'].append(dict((k, result.get(k)) for k in keys))
            self._write()

    def _write(self):
        try:
            write_json(self.files['state'], self.state)
        except (IOError, OSError):
            pass

    def heartbeat_age(self):
        try:
            return self.clock() - os.stat(self.files['heartbeat']).st_mtime
        except OSError:
            return None

    def check(self):
        """Decide whether to cancel now (called every second by the monitor thread)."""
        if self.reason is None:
            if os.path.exists(self.files['cancel']):
                self.cancel('cancelled by the controller (interrupted: Ctrl-C or SIGTERM of ansible-playbook)')
            elif self.heartbeat_timeout:
                age = self.heartbeat_age()
                if age is None or age > self.heartbeat_timeout:
                    self.cancel('no heartbeat from the controller for %d s (heartbeat_timeout %d s): ansible-playbook '
                                'was killed or lost its connection; the job cancelled itself (pgindex_detach: true '
                                'lets a job outlive its controller)' % (age or 0, self.heartbeat_timeout))
        if self.reason is not None:
            self._cancel_builds()

    def cancel(self, reason):
        with self._lock:
            if self.reason is None:
                self.reason = reason
                self.state['cancelled'] = reason
                self._write()

    def _monitor_session(self, use):
        """use(the monitor's own session); a failed session is closed and replaced next time. Returns
        (value, None) or (None, the error's one-line text)."""
        try:
            if self._monitor is None or self._monitor.closed:
                self._monitor = self.connect_monitor()
            return use(self._monitor), None
        except Exception as exc:  # pylint: disable=broad-except
            # the monitor's session failed: try again in a second with a new one
            if self._monitor is not None and not self._monitor.closed:
                try:
                    self._monitor.close()
                except Exception:  # pylint: disable=broad-except
                    pass
            self._monitor = None
            return None, ' '.join((getattr(exc, 'msg', None) or str(exc) or type(exc).__name__).split())[:300]

    def _cancel_builds(self):
        """pg_cancel_backend of this job's sessions that run a CREATE INDEX (not the cleanups)."""
        with self._lock:
            pids = [c.get_backend_pid() for c in self._conns if not c.closed]
        if not pids:
            return
        self._monitor_session(lambda conn: cancel_builds(conn, pids))

    def read_progress(self):
        """The builds' progress into the state file (the controller reads it with its heartbeat)."""
        if self.progress is None:
            return
        rows, error = self._monitor_session(self.progress)
        for row in rows or []:
            self._phase_start(row)
        with self._lock:
            self.state['progress_at'] = self.clock()
            self.state['progress_error'] = error
            if error is None:
                self.state['builds'] = rows or []
            self._write()

    def _phase_start(self, row):
        """Set ``phase_started_s`` on a progress row: how far into the build its current phase began, halfway
        between the last reading in the phase before and the first in this one (the ETA of a sort needs it)."""
        key = (row.get('pid'), row.get('index'))
        phase, elapsed = row.get('phase'), float(row.get('elapsed_s') or 0.0)
        seen = self._phases.get(key)
        if seen is None or seen['phase'] != phase:
            last = seen['last'] if seen is not None else 0.0
            seen = dict(phase=phase, started=round((last + elapsed) / 2.0, 2), last=elapsed)
            self._phases[key] = seen
        seen['last'] = elapsed
        row['phase_started_s'] = seen['started']
        row.update(self.row_info.get(row.get('index')) or {})

    def _loop(self):
        while not self._stop.wait(MONITOR_INTERVAL):
            self.check()
            self.read_progress()

    def close(self):
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        if self._monitor is not None and not self._monitor.closed:
            self._monitor.close()
        remove(self.files['state'], self.files['heartbeat'], self.files['cancel'])

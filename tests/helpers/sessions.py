"""Other sessions that get in the way of a concurrent build, for real."""
import threading
import time

import psycopg2


class OldSnapshot(object):
    """A REPEATABLE READ transaction holding a snapshot: CREATE INDEX CONCURRENTLY must wait for it
    to end before it can mark the index valid (and a lock_timeout hit in that wait fails the build late)."""

    def __init__(self, db):
        self.conn = db.connect()
        self.conn.autocommit = False
        self.conn.set_session(isolation_level='REPEATABLE READ')
        with self.conn.cursor() as cur:
            cur.execute('SELECT 1')

    def end(self):
        if not self.conn.closed:
            self.conn.rollback()
            self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.end()


class BackgroundStatement(object):
    """Run one statement in its own session and thread; remember its error, if any."""

    def __init__(self, db, statement, settings=None):
        self.conn = db.connect()
        self.pid = self.conn.get_backend_pid()
        self.error = None
        self.done = threading.Event()
        with self.conn.cursor() as cur:
            for name, value in (settings or {}).items():
                cur.execute('SELECT set_config(%s, %s, false)', (name, value))
        self.thread = threading.Thread(target=self._run, args=(statement,), daemon=True)
        self.thread.start()

    def _run(self, statement):
        try:
            with self.conn.cursor() as cur:
                cur.execute(statement)
        except psycopg2.Error as exc:
            self.error = exc
        finally:
            self.done.set()

    def join(self, timeout=60):
        assert self.done.wait(timeout), 'statement did not finish in %ss' % timeout
        self.conn.close()


def wait_until(db, query, args=None, timeout=30):
    """Poll ``query`` until it returns a true first column."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = db.query(query, args)
        if rows and rows[0][0]:
            return
        time.sleep(0.05)
    raise AssertionError('timed out waiting for: %s' % query)


def wait_for_build_waiting(db, pid):
    """Wait until backend ``pid`` is a CREATE INDEX CONCURRENTLY waiting for older snapshots."""
    wait_until(db, "SELECT EXISTS (SELECT 1 FROM pg_stat_progress_create_index p JOIN pg_stat_activity a"
                   " USING (pid) WHERE p.pid = %s AND a.wait_event_type = 'Lock')", (pid,))


def make_invalid_index(db, statement):
    """Leave an INVALID index the way production does: a CIC whose lock_timeout fires while it waits
    for an old snapshot, after the index already exists in the catalog."""
    with OldSnapshot(db):
        build = BackgroundStatement(db, statement, settings={'lock_timeout': '300ms'})
        build.join()
    assert isinstance(build.error, psycopg2.errors.LockNotAvailable), build.error

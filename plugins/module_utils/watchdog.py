# -*- coding: utf-8 -*-
# Copyright: ChefCloud Platform Engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Watch a DDL statement from a second session and keep its two waits apart.

A concurrent build waits twice, for different reasons:
- for the table lock (SHARE UPDATE EXCLUSIVE): bounded by ``lock_timeout``; a retry later helps;
- for every transaction older than its snapshot to finish (virtualxid / transactionid locks):
  bounded by ``snapshot_wait_timeout``; retrying does not help while an unrelated long
  transaction is open.
PostgreSQL's own lock_timeout cannot tell them apart (and fires late, after the index exists), so
the build session runs with lock_timeout = 0 and this watchdog cancels it (pg_cancel_backend) when
one wait exceeds its own limit, remembering which wait it was and who was blocking.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import threading
import time

from ansible_collections.chefcloud.pgindex.plugins.module_utils import catalog
from ansible_collections.chefcloud.pgindex.plugins.module_utils.connection import psycopg2

LOCK = 'lock_timeout'
SNAPSHOT = 'snapshot_wait_timeout'

# pg_locks.locktype of the waits for older transactions; any other ungranted lock is a lock wait.
SNAPSHOT_LOCKTYPES = ('virtualxid', 'transactionid')


class Watchdog(object):
    """Poll the waits of backend ``pid`` every ``interval`` seconds; cancel it past a limit.

    Limits are in seconds; 0 or None means no limit. Use as a context manager around the statement.
    ``reason`` is LOCK or SNAPSHOT when the watchdog cancelled the statement; ``blockers`` lists the
    sessions seen blocking it (pid, user, application_name, state, xact_age_s, query, wait).
    """

    def __init__(self, conn, pid, lock_timeout, snapshot_wait_timeout, interval=0.1):
        self.conn = conn
        self.pid = pid
        self.limits = {LOCK: lock_timeout or 0, SNAPSHOT: snapshot_wait_timeout or 0}
        self.waited = {LOCK: 0.0, SNAPSHOT: 0.0}
        self.interval = interval
        self.reason = None
        self.blockers = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name='pgindex-watchdog-%s' % pid)
        self._thread.daemon = True

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        return False

    def _loop(self):
        last = time.monotonic()
        while not self._stop.wait(self.interval):
            now = time.monotonic()
            elapsed, last = now - last, now
            try:
                waits = catalog.lock_waits(self.conn, self.pid)
            except psycopg2.Error:
                return  # the watchdog's own session failed: the statement goes on unwatched
            if not waits:
                continue
            kind = SNAPSHOT if all(w['locktype'] in SNAPSHOT_LOCKTYPES for w in waits) else LOCK
            self.waited[kind] += elapsed
            self._remember_blockers(kind, waits)
            limit = self.limits[kind]
            if limit and self.waited[kind] >= limit:
                self.reason = kind
                try:
                    catalog.cancel_backend(self.conn, self.pid)
                except psycopg2.Error:
                    pass
                return

    def _remember_blockers(self, kind, waits):
        pids = sorted(set(pid for w in waits for pid in w['blocking_pids']))
        known = set(b['pid'] for b in self.blockers)
        if not pids or set(pids) <= known:
            return
        try:
            for blocker in catalog.sessions(self.conn, [p for p in pids if p not in known]):
                blocker['wait'] = kind
                self.blockers.append(blocker)
        except psycopg2.Error:
            pass


def describe_blockers(blockers):
    """One line per blocking session, for messages."""
    return '; '.join(
        'pid %(pid)s user=%(user)s application=%(application_name)r state=%(state)s '
        'transaction age=%(xact_age_s)ss query=%(query)r' % b for b in blockers)

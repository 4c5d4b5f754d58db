# -*- coding: utf-8 -*-
"""Bench-only callback: writes per-task wall time to $BENCH_TIMING_FILE (JSON) at the end of the play.

Each entry: task name, role file path, count of runs (a task in a dynamic-include loop runs many
times) and total seconds, so the bench can say where a playbook's time goes.
"""
from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = '''
name: bench_timing
type: aggregate
short_description: per-task wall time to a JSON file (bench only)
description: per-task wall time to the file named by BENCH_TIMING_FILE
requirements: [enable in configuration]
'''


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'bench_timing'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self._t0 = time.time()
        self._current = None
        self._tasks = {}
        self._order = []
        self._eta = []

    def _close(self):
        if self._current is not None:
            key, started = self._current
            entry = self._tasks[key]
            entry['seconds'] += time.time() - started
            self._current = None

    def _start(self, task):
        self._close()
        path = task.get_path() or ''
        key = (task.get_name(), os.path.basename(path.split(':')[0]))
        if key not in self._tasks:
            self._tasks[key] = {'task': key[0], 'file': key[1], 'count': 0, 'seconds': 0.0,
                                'first_start': time.time() - self._t0}
            self._order.append(key)
        self._tasks[key]['count'] += 1
        self._current = (key, time.time())

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._start(task)

    def v2_playbook_on_handler_task_start(self, task):
        self._start(task)

    def v2_runner_on_ok(self, result):
        # the build task's ETA samples (pg_index_set's job.eta_samples), for the ETA accuracy of the bench
        job = result._result.get('job') if isinstance(result._result, dict) else None
        if isinstance(job, dict) and job.get('eta_samples'):
            self._eta = list(job['eta_samples'])

    def v2_playbook_on_stats(self, stats):
        self._close()
        out = os.environ.get('BENCH_TIMING_FILE')
        if out:
            with open(out, 'w') as f:
                json.dump({'total': time.time() - self._t0, 'eta_samples': self._eta,
                           'tasks': [self._tasks[k] for k in self._order]}, f, indent=1)

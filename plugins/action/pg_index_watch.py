# -*- coding: utf-8 -*-
# Copyright: ChefCloud Platform Engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The post-deploy watch as one loop on the controller (like ansible.windows.win_updates): every ``interval``
seconds for ``duration`` seconds, one reading by the pg_index_watch module on the module host, the signals of
the watch so far against the snapshot taken before the build, a progress line, and the guard's judgement.
mode=snapshot and mode=sample run the module once and return its result."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.chefcloud.pgindex.plugins.module_utils import connection, watch
from ansible_collections.chefcloud.pgindex.plugins.modules.pg_index_watch import ARGUMENT_SPEC

display = Display()

MODULE = 'chefcloud.pgindex.pg_index_watch'
LOOP_ONLY = ('duration', 'interval', 'snapshot', 'new_indexes', 'thresholds', 'on_regression', 'window', 'mode')


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = True

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        spec = connection.connection_argument_spec()
        spec.update(ARGUMENT_SPEC)
        try:
            _validated, args = self.validate_argument_spec(argument_spec=spec)
        except AnsibleActionFail as exc:
            result.update(failed=True, msg=str(exc))
            return result
        given = dict(self._task.args)
        if args['mode'] != 'watch':
            result.update(self._execute_module(module_name=MODULE, module_args=given, task_vars=task_vars))
            return result
        try:
            limits = watch.thresholds(args['thresholds'])
        # a SpecError: a clear message, never a traceback
        except Exception as exc:  # pylint: disable=broad-except
            result.update(failed=True, msg=getattr(exc, 'msg', str(exc)))
            return result
        base = dict(enabled=False, verdict='off', regressed=False, tripped=[], tripped_messages=[], rollback=False,
                    samples=[], columns=[], lines=[], watched_s=0, duration_s=args['duration'],
                    interval_s=args['interval'], on_regression=args['on_regression'], changed=False)
        if args['duration'] <= 0:
            result.update(base, msg='watch off (duration 0)', summary='off')
            return result
        if self._play_context.check_mode:
            result.update(base, msg='check mode: nothing to watch', summary='off (check mode)')
            return result
        if not args['snapshot'] or not args['snapshot'].get('readings'):
            result.update(base, failed=True, msg='the watch needs the snapshot taken before the build (mode=snapshot); '
                                                 'none was given, so there is nothing to compare with')
            return result
        module_args = dict((k, v) for k, v in given.items() if k not in LOOP_ONLY)
        module_args['mode'] = 'sample'
        return self._watch(result, base, args, limits, module_args, task_vars)

    def _new_indexes(self, args):
        by_name = dict((i.get('name'), i.get('schema') or args['schema']) for i in args['indexes'] if isinstance(i, dict))
        return ['%s.%s' % (by_name.get(n, args['schema']), n) if '.' not in n else n for n in args['new_indexes']]

    def _watch(self, result, base, args, limits, module_args, task_vars):
        duration, interval = float(args['duration']), max(float(args['interval']), 0.5)
        before = watch.before_signals(args['snapshot'])
        new_indexes = self._new_indexes(args)
        tables, columns = None, None
        readings, samples, lines = [], [], []
        tripped, win = [], None
        started = time.monotonic()
        n = 0
        while True:
            res = self._execute_module(module_name=MODULE, module_args=module_args, task_vars=task_vars)
            if res.get('failed'):
                result.update(base, failed=True, samples=samples, lines=lines,
                              msg='watch sample %d failed: %s' % (n + 1, res.get('msg')))
                return result
            reading = res['reading']
            if readings:
                watch.chain(readings[-1], reading)
            readings.append(reading)
            elapsed = time.monotonic() - started
            if tables is None:
                tables = sorted(reading.get('tables', {}))
                columns = watch.columns(tables, new_indexes)
            win = watch.window(readings[0], reading, watch.own_scans(readings[:-1]))
            tripped = watch.judge(before, win, limits, new_indexes)
            values = watch.sample_values(win, tables, new_indexes)
            n += 1
            line = watch.progress_line(n, elapsed, duration, values, tripped)
            display.display(line)
            lines.append(line)
            samples.append(dict(t=round(elapsed, 1), cells=values, window=win))
            if tripped and args['on_regression'] != 'warn':
                break
            if elapsed >= duration:
                break
            wait = min(started + n * interval, started + duration) - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        watched = round(time.monotonic() - started, 1)
        messages = [t['message'] for t in tripped]
        summary = ('PASS: no signal passed its threshold in %s s (%d samples)' % (watched, len(samples)) if not tripped else
                   'REGRESSED (%s): %s' % (args['on_regression'], ' | '.join(messages)))
        result.update(base, enabled=True, verdict='regressed' if tripped else 'pass', regressed=bool(tripped),
                      tripped=tripped, tripped_messages=messages, rollback=bool(tripped) and args['on_regression'] == 'rollback',
                      samples=samples, columns=columns, lines=lines, watched_s=watched, before=before, window=win,
                      health=watch.health(before, win, tripped), new_indexes=new_indexes, summary=summary,
                      database=res.get('database'), server_version=res.get('server_version'), msg=summary)
        if tripped and args['on_regression'] == 'fail':
            result['failed'] = True
        elif tripped and args['on_regression'] == 'warn':
            result.setdefault('warnings', []).extend(messages)
        return result

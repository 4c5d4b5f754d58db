# -*- coding: utf-8 -*-
# Copyright: ChefCloud Platform Engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The build phase as one controller-side loop (the way ansible.windows.win_updates runs long work).

It starts the pg_index_set module as a background job on the task's host (delegate_to), then, in
one Python loop on the controller, polls the job every second with one shell command and no module
run (_peek: touch the heartbeat, read the job's state file - the job's monitor thread writes its
builds' progress there twice a second - then wait on the module host, for the rest of the second, for
the job's async result, and check whether its pid runs), prints progress lines live every
``progress_interval`` seconds and when an index ends (n of N done, each build's phase and percent,
elapsed, ETA, who blocks a wait) and returns the module's result, read in the same poll, about a
tenth of a second after the job's end. It owns the liveness rules of the job (module_utils/jobcontrol.py):
a job that died without a result is reported from the catalog within two polls; every poll is the
job's heartbeat; Ctrl-C (SIGINT/SIGTERM of ansible-playbook) cancels the job's builds and waits for
it. In check mode the module runs in the foreground (it plans, and shows each index's estimate); when
preflight found every index present, valid and identical, nothing runs at all (the short path: the
results come from preflight's observation, no module run and no job).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import shlex
import signal
import time
import uuid

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.chefcloud.pgindex.plugins.module_utils import eta, jobcontrol, results

display = Display()

MODULE = 'chefcloud.pgindex.pg_index_set'
PROGRESS = 'chefcloud.pgindex.pg_index_progress'
# Options of the module itself; every other task argument is a connection option (module_defaults).
SET_OPTIONS = ('indexes', 'defaults', 'parallelism', 'on_error', 'db_cpus', 'cpu_share', 'off_peak')
LOOP_OPTIONS = ('progress_interval', 'build_timeout', 'heartbeat_timeout', 'detach', 'preflight')
NOT_STARTED = 'not started'
# How long Ctrl-C waits for the job to cancel its builds and clean up.
CANCEL_WAIT = 60
# Polls in a row that must find the job's process gone (and no result) to call it dead.
DEAD_POLLS = 2
# Seconds between the cheap polls (one shell command: heartbeat, state, result); progress lines are printed every
# progress_interval seconds and whenever an index ends.
POLL_INTERVAL = 1.0
PEEK_MARK = '@@pgindex-peek@@'
# The ETA the loop computed at each reading, per build, kept in the result (job.eta_samples) so that the
# report and the benchmark can hold it against the real durations; at most this many.
MAX_ETA_SAMPLES = 2000


def _json_or_none(text):
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class Interrupted(BaseException):  # like KeyboardInterrupt: no "except Exception" on the way swallows it
    def __init__(self, signum):
        super(Interrupted, self).__init__(signum)
        self.signum = signum


def _raise_interrupted(signum, frame):
    # once: ansible-playbook follows its SIGINT with a SIGTERM, which must not cut the cancellation short
    for other in (signal.SIGINT, signal.SIGTERM):
        signal.signal(other, signal.SIG_IGN)
    raise Interrupted(signum)


def identical_results(preflight, indexes):
    """When pg_preflight found every index of the change set present, valid and identical: their results (action
    ``none``, with the validity, size and definition preflight read), as the module would return them; else None."""
    if not isinstance(preflight, dict) or not indexes:
        return None
    seen = {}
    for check in preflight.get('checks') or []:
        name = check.get('name') or ''
        if name.startswith('index '):
            seen[name[len('index '):]] = (check, check.get('data') or {})
    found = []
    for item in indexes:
        if not isinstance(item, dict):
            return None
        schema = item.get('schema') or 'public'
        check, data = seen.get('%s.%s' % (schema, item.get('name')), (None, {}))
        if check is None or data.get('state', check.get('state')) != 'identical':
            return None
        table = item.get('table')
        found.append(results.index_result(item.get('name'), schema, table, 'none', msg=check.get('message') or '',
                                          valid=data.get('valid'), size_bytes=data.get('size_bytes'),
                                          definition=data.get('definition'), estimate_s=0.0))
    return found


class ActionModule(ActionBase):

    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        loop = dict((key, args.pop(key, None)) for key in LOOP_OPTIONS)
        self.interval_max = max(1, int(loop['progress_interval'] or 5))
        self.poll_interval = min(POLL_INTERVAL, self.interval_max)
        self.build_timeout = int(loop['build_timeout'] or 86400)
        self.detach = bool(loop['detach'])
        self.heartbeat_timeout = 0 if self.detach else int(loop['heartbeat_timeout'] or 60)
        self.task_vars = task_vars
        self.conn_args = dict((k, v) for k, v in args.items() if k not in SET_OPTIONS)
        self.indexes = [i for i in args.get('indexes') or [] if isinstance(i, dict)]
        try:
            identical = None if self._task.check_mode else identical_results(loop['preflight'], args.get('indexes'))
            if identical is not None:
                # the short path: preflight proved every index in place just now; no module run, no job
                result.update(changed=False, indexes=identical, short_path=True, leftovers=[], diff=[],
                              msg='%s (preflight found every index present, valid and identical: nothing started)'
                              % results.set_outcome(identical)['msg'])
            elif self._task.check_mode:
                result.update(self._foreground(args))
            else:
                result.update(self._background(args))
        finally:
            # ``failed`` does not survive the role's failed_when: false; this does
            result['build_failed'] = bool(result.get('failed')) or any(
                r.get('failed') for r in result.get('indexes') or []) or 'indexes' not in result
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result

    # ------------------------------------------------------------------ foreground (check mode, no-op)
    def _foreground(self, args):
        res = self._execute_module(module_name=MODULE, module_args=args, task_vars=self.task_vars)
        if self._task.check_mode:
            lines = []
            for r in res.get('indexes') or []:
                if r.get('estimate_s'):
                    lines.append('  %s on %s.%s: %s, estimated %s' % (
                        r.get('name'), r.get('schema'), r.get('table'), r.get('action'),
                        eta.human_seconds(r['estimate_s'])))
            if lines:
                total = sum(r.get('estimate_s') or 0 for r in res.get('indexes') or [])
                conc = res.get('concurrency') or {}
                display.display('estimated build (check mode): %s in all over %s lane(s); %s' % (
                    eta.human_seconds(total), conc.get('lanes', '?'), conc.get('rule', '')))
                for line in lines:
                    display.display(line)
        return res

    # ------------------------------------------------------------------ background job + loop
    def _progress(self, jid, token, cancel=False, states=False, cleanup=False, cancel_orphans=()):
        args = dict(self.conn_args, tables=self.indexes,
                    job=dict(jid=jid, async_dir=self.async_dir, token=token, cancel=cancel, cleanup=cleanup,
                             cancel_orphans=list(cancel_orphans)))
        if states:
            args['indexes'] = self.indexes
        return self._execute_module(module_name=PROGRESS, module_args=args, task_vars=self.task_vars)

    def _background(self, args):
        self.async_dir = self._remote_expand_user(self.get_shell_option('async_dir', default='~/.ansible_async'))
        token = uuid.uuid4().hex
        args['job'] = dict(async_dir=self.async_dir, token=token, heartbeat_timeout=self.heartbeat_timeout)
        self.parent = os.getppid()
        self.out_fd = self._controller_output()
        handlers = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                handlers[signum] = signal.signal(signum, _raise_interrupted)
            except (ValueError, OSError):  # not the main thread
                pass
        jid = None
        try:
            self._task.async_val = self.build_timeout
            try:
                started = self._execute_module(module_name=MODULE, module_args=args, task_vars=self.task_vars,
                                               wrap_async=True)
            finally:
                self._task.async_val = 0
            if started.get('failed') or 'ansible_job_id' not in started:
                return started
            jid = started['ansible_job_id']
            return self._follow(jid, token)
        except Interrupted as exc:
            return self._interrupted(jid, token, exc.signum)
        finally:
            for signum, handler in handlers.items():
                try:
                    signal.signal(signum, handler)
                except (ValueError, OSError, TypeError):
                    pass
            if self.out_fd is not None:
                os.close(self.out_fd)

    def _controller_output(self):
        """ansible-playbook's own stdout (Linux), for the lines printed after Ctrl-C: the worker's stdio is
        /dev/null and ansible-playbook stops reading its Display queue once interrupted."""
        try:
            return os.open('/proc/%d/fd/1' % self.parent, os.O_WRONLY | os.O_APPEND)
        except OSError:
            return None

    def _peek(self, jid, token, wait=0.0):
        """One cheap poll, no module run: touch the heartbeat, read the job's state file (its builds' progress
        included: the job's monitor thread writes it twice a second), the async result file and whether the job's
        pid runs, in one shell command on the module host. None when the command itself failed.

        With ``wait``, the command first waits up to that many seconds, in steps of 0.1 s on the module host, while
        the async result still says started: a job that ends in between is seen at once, not at the next poll (a
        shell whose ``sleep`` takes no fraction stops waiting: a plain poll)."""
        files = jobcontrol.paths(self.async_dir, token)
        quote = shlex.quote
        pid = (self.last_state or {}).get('pid')
        result_file = quote(os.path.join(self.async_dir, jid))
        steps = int(round(wait * 10))
        waiting = ('w=0; while [ "$w" -lt %d ] && grep -Eq %s %s 2>/dev/null; do sleep 0.1 2>/dev/null || break; '
                   'w=$((w+1)); done; ' % (steps, quote('"started": (1|true)'), result_file)) if steps else ''
        cmd = ('touch %s 2>/dev/null; %scat %s 2>/dev/null; echo; echo %s; cat %s 2>/dev/null; echo; echo %s; %s' % (
            quote(files['heartbeat']), waiting, quote(files['state']), PEEK_MARK, result_file,
            PEEK_MARK, ('kill -0 %d 2>/dev/null && echo 1 || echo 0' % int(pid)) if pid else 'echo'))
        res = self._low_level_execute_command(cmd, sudoable=True)
        parts = (res.get('stdout') or '').split(PEEK_MARK + '\n')
        if res.get('rc') not in (0, None) or len(parts) != 3:
            return None
        state = _json_or_none(parts[0])
        data = _json_or_none(parts[1])
        finished = isinstance(data, dict) and ('started' not in data or bool(data.get('finished')))
        alive = {'1': True, '0': False}.get(parts[2].strip())
        if alive is False and not finished:
            return dict(state=state, finished=False, alive=False, result_text=None)
        return dict(state=state, finished=finished, alive=alive, result_text=parts[1] if finished else None)

    def _follow(self, jid, token):
        start = time.monotonic()
        deadline = start + self.build_timeout + 60
        tracker = eta.EtaTracker()
        self.estimates, self.last_state = {}, {}
        dead, polls, printed, announced, done_seen, tracked_at = 0, 0, None, False, -1, None
        self.eta_samples = []
        while True:
            polled_at = time.monotonic()
            # the poll waits on the module host for the rest of the interval (it ends early when the job does)
            peek = self._peek(jid, token, wait=max(0.0, self.poll_interval - 0.1))
            polls += 1
            if peek is None:
                # the shell poll failed (an odd shell?): the module poll says the same, slower
                poll = self._progress(jid, token)
                job = poll.get('job') or {}
                peek = dict(state=job.get('state'), finished=job.get('finished'), alive=job.get('alive'),
                            result_text=None)
            if peek['state']:
                self.last_state = peek['state']
                self.estimates = self.last_state.get('estimates') or self.estimates
            if peek['finished']:
                return self._finish(jid, token, polls, time.monotonic() - start, peek['result_text'])
            dead = dead + 1 if peek['alive'] is False else 0
            if dead >= DEAD_POLLS or time.monotonic() > deadline:
                return self._died(jid, token, polls, time.monotonic() - start, timed_out=dead < DEAD_POLLS)
            if not announced and self.last_state:
                announced = True
                display.display(self._announce())
            now = time.monotonic()
            done = len(self.last_state.get('done') or [])
            seen_at = self.last_state.get('progress_at')
            if seen_at and seen_at != tracked_at:
                # a new reading of the job's monitor: the ETA model learns from every one, printed or not
                tracked_at = seen_at
                remaining = self._track(tracker, seen_at)
                if printed is None or now - printed >= self.interval_max or done != done_seen:
                    printed, done_seen = now, done
                    for line in self._lines(remaining, now - start):
                        display.display(line)
            if os.getppid() != self.parent:
                # the controller (ansible-playbook) is gone: stop the heartbeat, the job cancels itself
                return dict(failed=True, msg='ansible-playbook went away; the job %s stops its builds after its '
                            'heartbeat timeout (%d s)' % (jid, self.heartbeat_timeout))
            time.sleep(max(0.0, self.poll_interval - (time.monotonic() - polled_at)))

    def _decode(self, text):
        """The job's result as _execute_module would return it (the module's serialization profile), or None."""
        raw = dict(stdout=text, stderr='', rc=0)
        try:
            try:
                res = self._parse_returned_data(raw, 'legacy')   # ansible-core 2.19+
            except TypeError:
                res = self._parse_returned_data(raw)            # before 2.19
        except Exception:  # pylint: disable=broad-except
            return None
        if not isinstance(res, dict) or res.get('parsed') is False:
            return None
        res.pop('_ansible_parsed', None)
        return res

    def _announce(self):
        state = self.last_state
        conc = state.get('concurrency') or {}
        total = sum(self.estimates.values())
        return ('building %d index(es) in the background (job pid %s): %s lane(s); %s; estimated %s in all' % (
            state.get('total', len(self.indexes)), state.get('pid'), state.get('parallelism'), conc.get('rule', ''),
            eta.human_seconds(total)))

    def _track(self, tracker, seen_at):
        """Each running build's remaining seconds at the job's reading ``seen_at`` (epoch, the job's clock: the
        rate of a phase is measured between two readings of the same monitor), and a sample for the result."""
        remaining = []
        for build in self.last_state.get('builds') or []:
            left = tracker.update(build.get('pid'), build, seen_at, self.estimates.get(build.get('index')))
            remaining.append((build, left))
            if len(self.eta_samples) < MAX_ETA_SAMPLES:
                done, total = eta.counter(build)
                self.eta_samples.append(dict(at=round(seen_at, 2), index=build.get('index'), phase=build.get('phase'),
                                             percent=build.get('percent'), done=done, total=total,
                                             elapsed_s=build.get('elapsed_s'),
                                             phase_started_s=build.get('phase_started_s'), eta_s=left,
                                             estimate_s=self.estimates.get(build.get('index')),
                                             waiting=bool(build.get('waiting_for'))))
        return remaining

    def _lines(self, remaining, elapsed):
        """The progress lines of one reading: a header with n of N done and the ETA, one line per build."""
        state = self.last_state
        done = state.get('done') or []
        done_names = set(d.get('name') for d in done)
        building = set(build.get('index') for build, left in remaining)
        lines = []
        for build, left in remaining:
            lines.append('  %s%s' % (build.get('line'), '' if left is None else ', ETA %s%s' % (
                eta.human_seconds(left), ' after the wait' if build.get('waiting_for') else '')))
        waiting = [self.estimates.get(i['name'], 0.0) for i in self.indexes
                   if i['name'] not in done_names and i['name'] not in building]
        total_left = eta.overall_remaining([left for build, left in remaining], waiting, state.get('parallelism') or 1)
        header = '[%s] %d of %d done, %d building, elapsed %s, ETA %s' % (
            time.strftime('%H:%M:%S'), len(done), len(self.indexes), len(remaining), eta.human_seconds(elapsed),
            eta.human_seconds(total_left) + (' + the waits' if any(b.get('waiting_for') for b, left in remaining)
                                             else ''))
        if state.get('progress_error'):
            header += ' (progress not readable: %s)' % state['progress_error']
        return [header] + lines

    def _job_facts(self, jid, polls, elapsed, **extra):
        return dict(dict(jid=jid, pid=self.last_state.get('pid'), polls=polls, followed_s=round(elapsed, 1),
                         died=False, interrupted=False, eta_samples=getattr(self, 'eta_samples', [])), **extra)

    def _finish(self, jid, token, polls, elapsed, result_text=None):
        # the job removed its control files as it ended; a poll in between may have touched the heartbeat again
        files = jobcontrol.paths(self.async_dir, token)
        self._low_level_execute_command('rm -f %s' % ' '.join(shlex.quote(files[k]) for k in sorted(files)),
                                        sudoable=True)
        res = self._decode(result_text) if result_text else None
        if res is None:
            res = self._execute_module(module_name='ansible.builtin.async_status',
                                       module_args=dict(jid=jid, _async_dir=self.async_dir), task_vars=self.task_vars)
        if 'indexes' not in res:
            # the job process ended without its result (killed, crashed): say what the catalog shows
            return self._died(jid, token, polls, elapsed, detail=res.get('msg'))
        for key in ('ansible_job_id', 'started', 'finished', 'results_file', 'stdout', 'stdout_lines', 'stderr',
                    'stderr_lines'):
            res.pop(key, None)
        res['job'] = self._job_facts(jid, polls, elapsed)
        display.display('[%s] job %s ended: %d of %d done%s, %s' % (
            time.strftime('%H:%M:%S'), jid, len([r for r in res['indexes'] if not r.get('failed')]),
            len(res['indexes']), ', FAILED' if res.get('failed') else '', eta.human_seconds(elapsed)))
        return res

    def _died(self, jid, token, polls, elapsed, detail=None, timed_out=False):
        """The job is gone without a result: re-observe the catalog and report done / not built / leftovers."""
        seen = self._progress(jid, token, states=True, cleanup=True,
                              cancel_orphans=self.last_state.get('backends') or [])
        orphans = (seen.get('job') or {}).get('orphans_cancelled') or []
        done = dict((d.get('name'), d) for d in self.last_state.get('done') or [])
        indexes, leftovers, built, missing = [], [], [], []
        for state in seen.get('states') or []:
            name = state['name']
            reported = done.get(name)
            if reported and not reported.get('failed') and state.get('valid') is not False:
                r = results.index_result(name, state['schema'], state['table'], reported.get('action'),
                                         msg=reported.get('msg') or 'done before the job died')
                r['duration_s'] = reported.get('duration_s') or 0.0
                built.append(name)
            elif state.get('valid'):
                r = results.index_result(name, state['schema'], state['table'], 'unknown',
                                         msg='valid in the catalog (the job died before reporting it)')
                built.append(name)
            elif state.get('exists'):
                left = dict(index=name, schema=state['schema'], drop_sql=state['drop_sql'])
                r = results.index_result(name, state['schema'], state['table'], 'not built', failed=True,
                                         msg='not built: an INVALID index is left behind; run %s (the next run '
                                         'rebuilds it)' % state['drop_sql'], leftovers=[left])
                leftovers.append(left)
                missing.append(name)
            else:
                r = results.index_result(name, state['schema'], state['table'], 'not built', failed=True,
                                         msg='not built: the job died before building it')
                missing.append(name)
            r['estimate_s'] = self.estimates.get(name, 0.0)
            indexes.append(r)
        if detail and 'Traceback' in str(detail):
            # async_wrapper's own traceback when the module printed nothing: keep its last line only
            detail = 'the module process ended without output (killed by a signal?); async_wrapper: %s' % (
                [line for line in str(detail).splitlines() if line.strip()][-1].strip())
        why = ('the build job %s did not end within build_timeout (%d s)' % (jid, self.build_timeout) if timed_out
               else 'the build job %s (pid %s) died without a result%s' % (
                   jid, self.last_state.get('pid', '?'), (': ' + ' '.join(str(detail).split())[:300]) if detail else ''))
        msg = '%s.%s Done: %s. Not built: %s.%s' % (
            why, (' Its builds still running in the server were cancelled (pid %s).' % ', '.join(str(p) for p in orphans))
            if orphans else '', ', '.join(built) or 'none', ', '.join(missing) or 'none',
            (' INVALID leftovers: %s' % '; '.join(lo['drop_sql'] for lo in leftovers)) if leftovers else '')
        display.display('[%s] %s' % (time.strftime('%H:%M:%S'), msg))
        return dict(failed=True, changed=bool(built), msg=msg, indexes=indexes, leftovers=leftovers,
                    job=self._job_facts(jid, polls, elapsed, died=True, orphans_cancelled=orphans,
                                        backends=self.last_state.get('backends') or [],
                                        progress_error=seen.get('progress_error')))

    def _interrupted(self, jid, token, signum):
        """Ctrl-C: ask the job to cancel, wait for it, print what was cancelled (straight to the terminal:
        ansible-playbook itself may already be gone)."""
        name = 'SIGINT' if signum == signal.SIGINT else 'SIGTERM'
        if jid is None:
            msg = ('interrupted (%s) while starting the build job: if it started, it cancels its builds after its '
                   'heartbeat timeout (%d s)' % (name, self.heartbeat_timeout))
            self._say(msg)
            return dict(failed=True, msg=msg, job=dict(jid=None, interrupted=True))
        if self.detach:
            msg = ('interrupted (%s): stopped following the build job %s, which goes on (pgindex_detach); '
                   'follow it with ansible.builtin.async_status jid=%s' % (name, jid, jid))
            self._say(msg)
            return dict(failed=True, msg=msg, job=dict(jid=jid, interrupted=True, detached=True))
        self._say('interrupted (%s): cancelling the build job %s and its builds...' % (name, jid))
        deadline = time.monotonic() + CANCEL_WAIT
        finished = False
        while time.monotonic() < deadline:
            try:
                poll = self._progress(jid, token, cancel=True)
            except Exception:  # pylint: disable=broad-except
                time.sleep(1)
                continue
            job = poll.get('job') or {}
            if job.get('state'):
                self.last_state = job['state']
            if job.get('finished') or job.get('alive') is False:
                finished = True
                break
            time.sleep(1)
        res = None
        if finished:
            res = self._execute_module(module_name='ansible.builtin.async_status', module_args=dict(jid=jid, _async_dir=self.async_dir),
                                       task_vars=self.task_vars)
        if not res or 'indexes' not in res:
            msg = ('interrupted (%s): the build job %s did not confirm its cancellation within %d s; it cancels itself '
                   'after its heartbeat timeout (%d s)' % (name, jid, CANCEL_WAIT, self.heartbeat_timeout))
            self._say(msg)
            return dict(failed=True, msg=msg, job=dict(jid=jid, interrupted=True))
        cancelled = [r['name'] for r in res['indexes'] if r.get('failed') and r.get('action') != NOT_STARTED]
        skipped = [r['name'] for r in res['indexes'] if r.get('action') == NOT_STARTED]
        done = [r['name'] for r in res['indexes'] if not r.get('failed') and r.get('action') != NOT_STARTED]
        cleaned = [c for r in res['indexes'] for c in r.get('cleaned_up') or []]
        left = [lo.get('drop_sql') for r in res['indexes'] for lo in r.get('leftovers') or []]
        msg = 'interrupted (%s): cancelled %s; not started: %s; done before: %s; INVALID leftovers dropped: %s%s' % (
            name, ', '.join(cancelled) or 'nothing', ', '.join(skipped) or 'none', ', '.join(done) or 'none',
            ', '.join(cleaned) or 'none', ('; still to drop: %s' % '; '.join(left)) if left else '')
        for r in res['indexes']:
            if r.get('action') == NOT_STARTED:
                r['failed'] = True
        self._say(msg)
        for key in ('ansible_job_id', 'started', 'finished', 'results_file'):
            res.pop(key, None)
        res.update(failed=True, msg=msg + '. ' + (res.get('msg') or ''), job=dict(jid=jid, interrupted=True))
        return res

    def _say(self, text):
        # not through Display: after Ctrl-C the controller stops reading its workers' queue
        if self.out_fd is not None:
            try:
                os.write(self.out_fd, ('%s\n' % text).encode('utf-8', 'replace'))
                return
            except OSError:
                pass
        display.display(text)

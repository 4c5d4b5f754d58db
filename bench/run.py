#!/usr/bin/env python
"""Benchmark: the runbook's psql script against community.postgresql and chefcloud.pgindex, side by side.

One run = one embedded PostgreSQL 18 (tests/utils/pgserver.py, data in /var/tmp/pgindex/bench, port 54339,
every statement logged with a millisecond timestamp), one database with the six runbook tables
(tests/utils/demo_data.py, --rows per table), and --reps repetitions of every method, interleaved (the
order rotates each repetition). Before each method: the six indexes dropped, the writer's rows
deleted, VACUUM, CHECKPOINT and a settle pause. During each method a steady writer
(bench/workload.py: INSERT/UPDATE at --rate ops/s, its own process and connection) runs.

Measured the same way for every method:
  * build phase: from the start of the first CREATE INDEX to the end of the last one (server log:
    log_min_duration_statement = 0, log_line_prefix %m; start = log time - duration), and which
    builds overlapped (time with 0, 1, 2+ builds running);
  * wall time of the whole command (end to end), and for our playbook its per-task time
    (bench/callback_plugins/bench_timing.py);
  * the writer's latency (from the moment each operation was due) p50/p99/max, and per 0.25 s;
  * p95 of the six verification queries, before (no index) and after;
  * the server's CPU seconds during the command (postmaster and its children, /proc), from which the
    writers' share (the idle method's CPU rate) is subtracted in the report.

    bench/.venv/bin/python bench/run.py --rows 200000 --reps 1      # `make bench ROWS=200000 REPS=1`

Results: bench/results/bench-<rows>.json (render with bench/render.py).
"""
from __future__ import annotations

import argparse
from contextlib import closing
import csv
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import psycopg2
import yaml

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
MAIN_BIN = ROOT / '.venv' / 'bin'
RESULTS = BENCH / 'results'
WORK = RESULTS / 'work'
INSERT_BASE = 1_000_000_000
CHANGESET = ROOT / 'changesets' / '001_franchise_indexes.yml'

# Server settings of the bench server (tests/utils/pgserver.py adds fsync=off, shared_buffers=128MB).
SERVER_SETTINGS = {
    'log_min_duration_statement': '0',
    'log_line_prefix': '%m [%p] %a: ',
    'log_timezone': 'UTC',
    'max_wal_size': '8GB',            # no checkpoint in the middle of a method: we CHECKPOINT before each
    'checkpoint_timeout': '30min',
    'autovacuum': 'off',              # no autovacuum worker competing with one method and not another
}

# method -> description (for the report)
METHODS = {
    'idle': 'no deploy: the writers alone (their baseline)',
    'runbook': "the runbook: psql -f with the six CREATE INDEX CONCURRENTLY IF NOT EXISTS, one after another",
    'psql_parallel': 'reference: two hand-run psql streams (3 indexes each), maintenance_work_mem 256MB',
    'psql_lanes': 'reference: the off-peak arrangement by hand - two psql streams (3 indexes each, the same split),'
                  ' max_parallel_maintenance_workers 0, default maintenance_work_mem',
    'community': 'community.postgresql.postgresql_idx (ansible 12.3.0) looped over the six, concurrent',
    'ours_default': 'chefcloud.pgindex deploy_indexes.yml, default settings (latency sampling off)',
    'ours_tuned': 'deploy_indexes.yml, pgindex_parallelism=3, pgindex_maintenance_work_mem=256MB (sampling off)',
    'ours_sampling': 'deploy_indexes.yml, default settings with latency sampling on',
    'ours_fast': 'deploy_indexes.yml, pgindex_parallelism=6 (one wave, no barrier), pgindex_progress_interval=1,'
                 ' pgindex_maintenance_work_mem=256MB (sampling off): what the role can do today without waves',
    'ours_offpeak': 'deploy_indexes.yml, pgindex_off_peak=true: lanes and parallel workers use every CPU of the'
                    ' database host (sampling off)',
    'plain': 'for context: plain CREATE INDEX (no CONCURRENTLY), one after another',
}
DEFAULT_METHODS = ['idle', 'runbook', 'psql_parallel', 'psql_lanes', 'community', 'ours_default', 'ours_offpeak',
                   'ours_tuned',
                   'ours_fast', 'ours_sampling', 'plain']
PLAYBOOK_VARS = {
    'ours_default': {'pgindex_latency_sampling': False},
    'ours_tuned': {'pgindex_latency_sampling': False, 'pgindex_parallelism': 3,
                   'pgindex_maintenance_work_mem': '256MB'},
    'ours_fast': {'pgindex_latency_sampling': False, 'pgindex_parallelism': 6, 'pgindex_progress_interval': 1,
                  'pgindex_maintenance_work_mem': '256MB'},
    'ours_sampling': {},
    'ours_offpeak': {'pgindex_latency_sampling': False, 'pgindex_off_peak': True},
}
CPU_SETTLE_S = 1.0
LOG_RE = re.compile(r'^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) UTC \[(\d+)\] [^:]*: LOG:  '
                    r'duration: ([\d.]+) ms  statement: (.*)$')


def log(msg):
    print('[%s] %s' % (datetime.now(timezone.utc).strftime('%H:%M:%S'), msg), flush=True)


def pct(values, p):
    """Percentile by linear interpolation (p in 0..100); None for no values."""
    if not values:
        return None
    v = sorted(values)
    k = (len(v) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def eta_accuracy(samples, intervals, build_start):
    """Per index: the ETA the build loop printed nearest to the middle of the build, against the truth.

    ``samples``: pg_index_set's job.eta_samples (at: epoch of the job's reading, index, phase, eta_s);
    ``intervals``: {index: [start, end]} in seconds from ``build_start`` (epoch), from the server log.
    At the sample nearest to 50 % of the build (between 25 % and 75 %), the truth is the time the build
    still took (end - at); the error is (eta - truth) / truth. None for an index with no such sample.
    """
    out = {}
    for name, (start, end) in intervals.items():
        start, end = build_start + start, build_start + end
        duration = end - start
        mid = start + duration / 2.0
        near = [s for s in samples if s.get('index') == name and s.get('eta_s') is not None
                and start + 0.25 * duration <= s['at'] <= start + 0.75 * duration]
        if not near or duration <= 0:
            out[name] = {'duration_s': duration, 'sample': None, 'error': None}
            continue
        best = min(near, key=lambda s: abs(s['at'] - mid))
        truth = end - best['at']
        out[name] = {'duration_s': round(duration, 2), 'at_fraction': round((best['at'] - start) / duration, 2),
                     'phase': best.get('phase'), 'eta_s': best['eta_s'], 'truth_s': round(truth, 2),
                     'error': round((best['eta_s'] - truth) / truth, 3) if truth > 0 else None}
    return out


# --------------------------------------------------------------------------- server and data
class Bench:
    def __init__(self, args):
        self.args = args
        self.indexes = yaml.safe_load(CHANGESET.read_text())['pgindex_indexes']
        self.names = [i['name'] for i in self.indexes]
        self.db = 'bench_%d' % args.rows
        self.dsn = 'host=127.0.0.1 port=%d user=postgres dbname=%s' % (args.port, self.db)
        self.env = {**os.environ, 'PGHOST': '127.0.0.1', 'PGPORT': str(args.port),
                    'PGUSER': 'postgres', 'PGDATABASE': self.db}
        self.log_file = Path(str(Path(args.data).absolute()) + '.log')
        self.psql = None

    def pgserver(self, *cmd):
        return subprocess.run([str(MAIN_BIN / 'python'), str(ROOT / 'tests' / 'utils' / 'pgserver.py'), *cmd],
                              check=True, capture_output=True, text=True).stdout.strip()

    def start_server(self):
        sets = []
        for k, v in SERVER_SETTINGS.items():
            sets += ['--set', '%s=%s' % (k, v)]
        # A server left running by an interrupted bench may have other settings: restart it.
        self.pgserver('stop', '--data', self.args.data)
        self.pgserver('start', '--data', self.args.data, '--port', str(self.args.port), *sets)
        self.psql = str(Path(self.pgserver('bin-dir')) / 'psql')
        log('server on port %d (data %s, log %s)' % (self.args.port, self.args.data, self.log_file))

    def stop_server(self):
        self.pgserver('stop', '--data', self.args.data)
        log('server stopped')

    def server_cpu_s(self):
        """CPU seconds (user + system) of the server so far: the postmaster, its running children, and
        the children it already reaped (cutime/cstime). Differences over a method are its server CPU."""
        tick = os.sysconf('SC_CLK_TCK')
        postmaster = int(Path(self.args.data, 'postmaster.pid').read_text().split()[0])

        def stat(pid):
            fields = Path('/proc/%d/stat' % pid).read_text().rsplit(')', 1)[1].split()
            return int(fields[1]), [int(f) for f in fields[11:15]]   # ppid; utime, stime, cutime, cstime
        total = sum(stat(postmaster)[1])
        for entry in os.listdir('/proc'):
            if not entry.isdigit():
                continue
            try:
                ppid, times = stat(int(entry))
            except (OSError, IndexError, ValueError):
                continue
            if ppid == postmaster:
                total += times[0] + times[1]
        return total / float(tick)

    def connect(self, **kw):
        conn = psycopg2.connect(self.dsn, application_name='bench_runner', **kw)
        conn.autocommit = True
        return conn

    def load(self):
        t = time.monotonic()
        subprocess.run([str(MAIN_BIN / 'python'), str(ROOT / 'tests' / 'utils' / 'demo_data.py'),
                        '--rows', str(self.args.rows), '--create-db', self.db], env=self.env, check=True)
        with closing(self.connect()) as conn, conn.cursor() as cur:
            cur.execute('SET log_min_duration_statement = -1')
            for i in self.indexes:
                cur.execute('VACUUM (ANALYZE) %s' % i['table'])  # hint bits and visibility map, once
            cur.execute('SELECT version(), pg_size_pretty(sum(pg_table_size(c.oid))) FROM pg_class c'
                        ' WHERE relname = ANY(%s)', ([i['table'] for i in self.indexes],))
            self.version, self.size = cur.fetchone()
        log('data ready: %s rows per table, %s in total (%.0f s)'
            % (self.args.rows, self.size, time.monotonic() - t))

    def reset(self):
        """Same starting state for every method: no index, no writer rows, vacuumed, checkpointed."""
        with closing(self.connect()) as conn, conn.cursor() as cur:
            cur.execute('SET log_min_duration_statement = -1')
            for name in self.names:
                cur.execute('DROP INDEX IF EXISTS %s' % name)
            for i in self.indexes:
                cur.execute('DELETE FROM %s WHERE id >= %%s' % i['table'], (INSERT_BASE,))
                cur.execute('VACUUM %s' % i['table'])
            cur.execute('CHECKPOINT')
        time.sleep(self.args.settle)

    def valid_indexes(self):
        with closing(self.connect()) as conn, conn.cursor() as cur:
            cur.execute('SET log_min_duration_statement = -1')
            cur.execute('SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid'
                        ' WHERE c.relname = ANY(%s) AND i.indisvalid AND i.indisready', (self.names,))
            return cur.fetchone()[0]

    # ----------------------------------------------------------------------- queries
    def query_p95(self, samples):
        """p95 (ms) of each verification query, `samples` runs each (after one warm-up run)."""
        out = {}
        with closing(self.connect()) as conn, conn.cursor() as cur:
            cur.execute('SET log_min_duration_statement = -1')
            for i in self.indexes:
                v = i['verify']
                times = []
                for n in range(samples + 1):
                    t = time.perf_counter()
                    cur.execute(v['query'], v.get('params') or {})
                    cur.fetchall()
                    if n:
                        times.append((time.perf_counter() - t) * 1000)
                out[v['label']] = {'p50_ms': pct(times, 50), 'p95_ms': pct(times, 95)}
        return out

    # ----------------------------------------------------------------------- methods
    def sql_file(self, name, concurrently, only=None, mwm=None, workers=None):
        lines = ['SET statement_timeout = 0;', "SET lock_timeout = '5s';"]
        if mwm:
            lines.append("SET maintenance_work_mem = '%s';" % mwm)
        if workers is not None:
            lines.append('SET max_parallel_maintenance_workers = %d;' % workers)
        for idx in self.indexes:
            if only is not None and idx['name'] not in only:
                continue
            lines.append('CREATE INDEX %sIF NOT EXISTS %s ON %s (%s);' % (
                'CONCURRENTLY ' if concurrently else '', idx['name'], idx['table'], ', '.join(idx['columns'])))
        path = WORK / ('%s.sql' % name)
        path.write_text('\n'.join(lines) + '\n')
        return path

    def psql_cmd(self, path):
        return [self.psql, '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-f', str(path)]

    def playbook(self, playbook, extra, tag, collections=None):
        timing = WORK / ('%s.timing.json' % tag)
        env = {**self.env,
               'ANSIBLE_CONFIG': str(ROOT / 'ansible.cfg'),
               'ANSIBLE_CALLBACK_PLUGINS': str(BENCH / 'callback_plugins'),
               'ANSIBLE_CALLBACKS_ENABLED': 'bench_timing',
               'BENCH_TIMING_FILE': str(timing)}
        if collections:
            env['ANSIBLE_COLLECTIONS_PATH'] = collections
        cmd = [str(MAIN_BIN / 'ansible-playbook'), str(playbook)]
        if playbook.parent.name == 'playbooks' and playbook.parent.parent == ROOT:
            cmd += ['-i', 'inventories/local']
        if extra is not None:
            cmd += ['-e', json.dumps(extra)]
        return cmd, env, timing

    def command_for(self, method, tag):
        """[(argv, env)] run at the same time, and the per-task timing file if any."""
        if method == 'runbook':
            return [(self.psql_cmd(self.sql_file('runbook', True)), self.env)], None
        if method == 'plain':
            return [(self.psql_cmd(self.sql_file('plain', False)), self.env)], None
        if method == 'psql_parallel':
            a, b = self.names[0::2], self.names[1::2]
            return [(self.psql_cmd(self.sql_file('stream_a', True, a, '256MB')), self.env),
                    (self.psql_cmd(self.sql_file('stream_b', True, b, '256MB')), self.env)], None
        if method == 'psql_lanes':
            a, b = self.names[0::2], self.names[1::2]
            return [(self.psql_cmd(self.sql_file('lanes_a', True, a, workers=0)), self.env),
                    (self.psql_cmd(self.sql_file('lanes_b', True, b, workers=0)), self.env)], None
        if method == 'community':
            cols = '%s:%s' % (BENCH / '.collections', ROOT / '.collections')
            cmd, env, timing = self.playbook(BENCH / 'playbooks' / 'community_idx.yml', None, tag, cols)
            return [(cmd, env)], timing
        if method in PLAYBOOK_VARS or method == 'noop':
            extra = {**PLAYBOOK_VARS.get(method, {'pgindex_latency_sampling': False}),
                     'pgindex_report_dir': str(WORK / 'reports')}
            cmd, env, timing = self.playbook(ROOT / 'playbooks' / 'deploy_indexes.yml', extra, tag)
            return [(cmd, env)], timing
        raise ValueError(method)

    def run_commands(self, commands, tag):
        procs = []
        for n, (cmd, env) in enumerate(commands):
            out = open(WORK / ('%s.%d.out' % (tag, n)), 'w')
            procs.append((subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT), out))
        rcs = []
        for p, out in procs:
            rcs.append(p.wait())
            out.close()
        return rcs

    # ----------------------------------------------------------------------- one measured run
    def measure(self, method, rep, idle_seconds):
        tag = '%s.r%d' % (method, rep)
        self.reset()
        wl_out = WORK / ('%s.writer.csv' % tag)
        writer = subprocess.Popen([sys.executable, str(BENCH / 'workload.py'), '--dsn', self.dsn,
                                   '--rate', str(self.args.rate), '--rows', str(self.args.rows),
                                   '--out', str(wl_out), '--seed', str(rep)])
        time.sleep(self.args.preroll)
        log_offset = self.log_file.stat().st_size
        cpu0 = self.server_cpu_s()
        t0 = time.time()
        timing = None
        if method == 'idle':
            time.sleep(idle_seconds)
            rcs = [0]
        else:
            commands, timing = self.command_for(method, tag)
            rcs = self.run_commands(commands, tag)
        t1 = time.time()
        # a backend that just exited may not be reaped yet: neither a child in /proc nor in the postmaster's
        # cutime. Read the CPU after a settle; the writers' share of it is subtracted over the same span.
        time.sleep(CPU_SETTLE_S)
        cpu1 = self.server_cpu_s()
        cpu_span = time.time() - t0
        time.sleep(max(0.0, self.args.preroll - CPU_SETTLE_S))
        writer.send_signal(signal.SIGTERM)
        writer.wait(timeout=30)
        result = {'method': method, 'rep': rep, 'rc': rcs, 'wall_s': t1 - t0, 'start': t0,
                  'server_cpu_s': cpu1 - cpu0, 'cpu_span_s': cpu_span}
        if method != 'idle':
            result['valid_indexes'] = self.valid_indexes()
            result.update(self.build_phase(log_offset))
        result['writers'] = self.writer_stats(wl_out, t0, t1)
        if timing and timing.exists():
            result['tasks'] = json.loads(timing.read_text())
            if result.get('intervals') and result['tasks'].get('eta_samples'):
                result['eta'] = eta_accuracy(result['tasks']['eta_samples'], result['intervals'],
                                             result['build_start'])
        if any(rcs) or (method != 'idle' and result['valid_indexes'] != len(self.names)):
            log('WARNING: %s rep %d: exit codes %s, %s valid indexes (see %s)' % (
                method, rep, rcs, result.get('valid_indexes'), WORK))
        return result

    def build_phase(self, offset):
        """First CREATE INDEX start to last CREATE INDEX end of the six, from the server log."""
        intervals = {}
        with open(self.log_file, errors='replace') as f:
            f.seek(offset)
            for line in f:
                m = LOG_RE.match(line.rstrip('\n'))
                if not m or 'INDEX' not in m.group(4).upper():
                    continue
                stmt = m.group(4)
                if not re.match(r'\s*CREATE\s+(UNIQUE\s+)?INDEX', stmt, re.I) or 'pg_temp' in stmt:
                    continue
                pattern = r'INDEX\s+(CONCURRENTLY\s+)?(IF NOT EXISTS\s+)?"?%s"?\s'
                name = next((n for n in self.names if re.search(pattern % n, stmt, re.I)), None)
                if name is None:
                    continue
                end = datetime.strptime(m.group(1), '%Y-%m-%d %H:%M:%S.%f').replace(
                    tzinfo=timezone.utc).timestamp()
                start = end - float(m.group(3)) / 1000.0
                # the last (successful) build of each index counts; an earlier attempt extends the start
                prev = intervals.get(name)
                intervals[name] = (min(start, prev[0]) if prev else start, end)
        if not intervals:
            return {'build_s': None, 'intervals': {}}
        first = min(start for start, end in intervals.values())
        last = max(end for start, end in intervals.values())
        # time with 0, 1, 2, ... builds running, inside the build phase
        events = sorted([(start, 1) for start, end in intervals.values()]
                        + [(end, -1) for start, end in intervals.values()])
        running, prev_t, by_level = 0, first, {}
        for t, d in events:
            by_level[running] = by_level.get(running, 0.0) + (t - prev_t)
            running += d
            prev_t = t
        return {'build_s': last - first, 'build_start': first, 'build_end': last,
                'intervals': {n: [s - first, e - first] for n, (s, e) in intervals.items()},
                'concurrency_s': {str(k): v for k, v in sorted(by_level.items())}}

    def writer_stats(self, path, t0, t1):
        lat, series, failed = [], {}, 0
        with open(path) as f:
            for row in csv.DictReader(f):
                due = float(row['due'])
                ms = float(row['latency_ms'])
                if '!' in row['kind']:
                    failed += 1
                b = round((due - t0) / 0.25) * 0.25
                series[b] = max(series.get(b, 0.0), ms)
                if t0 <= due <= t1:
                    lat.append(ms)
        return {'ops': len(lat), 'failed': failed, 'p50_ms': pct(lat, 50), 'p99_ms': pct(lat, 99),
                'max_ms': max(lat) if lat else None,
                'series': sorted([b, round(v, 2)] for b, v in series.items())}

    def floor(self, rep):
        """What any playbook costs here: ansible-playbook with one debug task, and with one module run (ping)
        on the same local inventory host: the floor under the fixed overhead and the no-op."""
        out = {'rep': rep}
        for name in ('floor_debug', 'floor_module'):
            cmd, env, timing = self.playbook(BENCH / 'playbooks' / ('%s.yml' % name), None, '%s.r%d' % (name, rep))
            t0 = time.time()
            rcs = self.run_commands([(cmd, env)], '%s.r%d' % (name, rep))
            out[name] = time.time() - t0
            out[name + '_rc'] = rcs
        return out

    def noop(self, rep):
        """The deploy playbook again with the six indexes in place: nothing to build."""
        tag = 'noop.r%d' % rep
        commands, timing = self.command_for('noop', tag)
        t0 = time.time()
        rcs = self.run_commands(commands, tag)
        r = {'method': 'noop', 'rep': rep, 'rc': rcs, 'wall_s': time.time() - t0}
        if timing.exists():
            r['tasks'] = json.loads(timing.read_text())
        return r


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--rows', type=int, default=1_000_000)
    ap.add_argument('--reps', type=int, default=3)
    ap.add_argument('--port', type=int, default=54339)
    ap.add_argument('--data', default='/var/tmp/pgindex/bench')
    ap.add_argument('--rate', type=float, default=200.0, help='writer operations per second')
    ap.add_argument('--settle', type=float, default=3.0, help='seconds to wait after CHECKPOINT')
    ap.add_argument('--preroll', type=float, default=2.0, help='writer seconds before and after a method')
    ap.add_argument('--query-samples', type=int, default=15)
    ap.add_argument('--methods', default=','.join(DEFAULT_METHODS))
    ap.add_argument('--keep-server', action='store_true', help='leave the bench server running')
    ap.add_argument('--out', help='JSON result (default bench/results/bench-<rows>.json)')
    ap.add_argument('--append', action='store_true',
                    help='add these repetitions (numbered after the existing ones) to an existing result file')
    args = ap.parse_args(argv)
    methods = [m.strip() for m in args.methods.split(',') if m.strip()]
    unknown = set(methods) - set(METHODS)
    if unknown:
        ap.error('unknown methods: %s' % ', '.join(sorted(unknown)))
    out = Path(args.out) if args.out else RESULTS / ('bench-%d.json' % args.rows)
    shutil.rmtree(WORK, ignore_errors=True)
    (WORK / 'reports').mkdir(parents=True)

    b = Bench(args)
    b.start_server()
    doc = {'rows': args.rows, 'reps': args.reps, 'rate': args.rate, 'methods': methods,
           'descriptions': {m: METHODS[m] for m in methods},
           'started': datetime.now(timezone.utc).isoformat(timespec='seconds'),
           'machine': {'cpus': os.cpu_count(), 'platform': platform.platform()},
           'settings': SERVER_SETTINGS, 'runs': [], 'noop': [], 'queries': {'before': [], 'after': []}}
    first_rep = 0
    if args.append and out.exists():
        old = json.loads(out.read_text())
        old['methods'] += [m for m in methods if m not in old['methods']]
        old['descriptions'].update(doc['descriptions'])
        first_rep = 1 + max((r['rep'] for r in old['runs']), default=-1)
        doc = old
    try:
        b.load()
        doc['server'] = b.version
        doc['data_size'] = b.size
        for rep in range(first_rep, first_rep + args.reps):
            order = methods[rep % len(methods):] + methods[:rep % len(methods)]
            log('rep %d/%d: %s' % (rep + 1, first_rep + args.reps, ', '.join(order)))
            b.reset()
            doc['queries']['before'].append(b.query_p95(args.query_samples))
            for method in order:
                runbook = [r['build_s'] for r in doc['runs'] if r['method'] == 'runbook' and r.get('build_s')]
                idle_s = statistics.median(runbook) if runbook else 15.0
                r = b.measure(method, rep, idle_s)
                doc['runs'].append(r)
                log('  %-14s wall %6.1f s  build %s  writers p50 %.1f p99 %.1f max %.0f ms' % (
                    method, r['wall_s'], '%.1f s' % r['build_s'] if r.get('build_s') else '-',
                    r['writers']['p50_ms'] or 0, r['writers']['p99_ms'] or 0, r['writers']['max_ms'] or 0))
                if method == 'ours_default':
                    n = b.noop(rep)
                    doc['noop'].append(n)
                    log('  %-14s wall %6.1f s' % ('noop re-run', n['wall_s']))
                    f = b.floor(rep)
                    doc.setdefault('floor', []).append(f)
                    log('  %-14s one debug task %.1f s, one module run %.1f s' % (
                        'floor', f['floor_debug'], f['floor_module']))
                    doc['queries']['after'].append(b.query_p95(args.query_samples))
            doc['finished'] = datetime.now(timezone.utc).isoformat(timespec='seconds')
            out.write_text(json.dumps(doc, indent=1))  # after every repetition: partial results survive
        log('results: %s' % out)
    finally:
        if not args.keep_server:
            b.stop_server()
    return 0


if __name__ == '__main__':
    sys.exit(main())

#!/usr/bin/env python
"""Benchmark: deploy_indexes.yml over a fleet of local clusters, first deploy and no-op re-runs.

Issue 13's target: "a fleet: deploy_indexes.yml over 10 local clusters (20k rows each, one inventory,
forks 10) as a no-op <= 15 s".

One run = --clusters embedded PostgreSQL 18 servers (tests/utils/pgserver.py, data in
/var/tmp/pgindex/fleet/cNN, port 54400+NN, autovacuum off; a server left running by an interrupted run is
stopped first), each with a fresh database `fleet` holding the six runbook tables (tests/utils/demo_data.py,
--rows per table, loaded two clusters at a time, then VACUUM (ANALYZE) once), and one inventory
(bench/results/work/fleet/inventory.yml): group pgindex_databases with hosts fleet01..fleetNN (local
connection, each pointed at its server by pgindex_connection), group pgindex_bastions with localhost (the
modules run there, as in inventories/local).

Then, with the six indexes of changesets/001_franchise_indexes.yml dropped on every cluster:
  * one first deploy (builds the six indexes on every cluster: the playbook's canary-first rollout,
    `serial: [1, '100%']`, i.e. one cluster, then the others at once);
  * --reps no-op re-runs (the indexes exist everywhere: nothing to build).
Every run is `ansible-playbook playbooks/deploy_indexes.yml -i <inventory>` from the repository root with
ANSIBLE_FORKS=--forks, latency sampling off, no PG* variable in its environment, and the bench_timing
callback (bench/callback_plugins). Measured per run: wall time of the whole command, its exit code, the
PLAY RECAP (changed per host), when each batch's play started (from the command's output, read as it comes),
the per-task time (bench_timing; a task's seconds are wall seconds with all the batch's hosts in it, summed
over both batches) and the count of valid indexes per cluster afterwards.

    bench/.venv/bin/python bench/fleet.py --clusters 2 --reps 1          # quick check
    bench/.venv/bin/python bench/fleet.py                                 # 10 clusters, 3 no-op runs
    bench/.venv/bin/python bench/fleet.py --render bench/results/fleet-10x20000.json

Results: bench/results/fleet-<clusters>x<rows>.json; render_fleet(doc) gives its BENCHMARKS.md section.
A run that exits non-zero is reported loudly and makes this script exit 1 (after writing the results).
"""
from __future__ import annotations

import argparse
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
import json
import os
import platform
import re
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
WORK = RESULTS / 'work' / 'fleet'
CHANGESET = ROOT / 'changesets' / '001_franchise_indexes.yml'
DATA_BASE = Path('/var/tmp/pgindex/fleet')
PORT_BASE = 54400
DB = 'fleet'
SERVER_SETTINGS = {'autovacuum': 'off'}   # tests/utils/pgserver.py adds fsync=off, shared_buffers=128MB
PLAYBOOK_VARS = {'pgindex_latency_sampling': False}
LOADERS = 2                               # clusters started / loaded at the same time (2 CPUs)
TARGET_CLUSTERS = 10
TARGET_NOOP_S = 15.0
RECAP_RE = re.compile(r'^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$')


def log(msg):
    print('[%s] %s' % (datetime.now(timezone.utc).strftime('%H:%M:%S'), msg), flush=True)


def clean_env(**extra):
    """This process's environment without any PG* variable (nothing leaks into a cluster's connection)."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith('PG')}, **extra}


# --------------------------------------------------------------------------- the fleet
class Fleet:
    def __init__(self, args):
        self.args = args
        self.names = [i['name'] for i in yaml.safe_load(CHANGESET.read_text())['pgindex_indexes']]
        self.tables = [i['table'] for i in yaml.safe_load(CHANGESET.read_text())['pgindex_indexes']]
        self.clusters = [{'host': 'fleet%02d' % n, 'data': str(DATA_BASE / ('c%02d' % n)), 'port': PORT_BASE + n}
                         for n in range(1, args.clusters + 1)]
        self.inventory = WORK / 'inventory.yml'

    def pgserver(self, *cmd):
        return subprocess.run([str(MAIN_BIN / 'python'), str(ROOT / 'tests' / 'utils' / 'pgserver.py'), *cmd],
                              check=True, capture_output=True, text=True, env=clean_env()).stdout.strip()

    def each(self, fn):
        """fn(cluster) for every cluster, LOADERS at a time; the results in cluster order."""
        with ThreadPoolExecutor(max_workers=LOADERS) as pool:
            return list(pool.map(fn, self.clusters))

    def dsn(self, c, db=DB):
        return 'host=127.0.0.1 port=%d user=postgres dbname=%s' % (c['port'], db)

    def connect(self, c, db=DB):
        conn = psycopg2.connect(self.dsn(c, db), application_name='bench_fleet')
        conn.autocommit = True
        return conn

    def start(self):
        sets = []
        for k, v in SERVER_SETTINGS.items():
            sets += ['--set', '%s=%s' % (k, v)]

        def one(c):
            # A server left running by an interrupted run may have other settings: restart it.
            self.pgserver('stop', '--data', c['data'])
            self.pgserver('start', '--data', c['data'], '--port', str(c['port']), *sets)
        t = time.monotonic()
        self.each(one)
        log('%d servers on ports %d..%d (data %s/cNN) (%.0f s)' % (
            len(self.clusters), self.clusters[0]['port'], self.clusters[-1]['port'], DATA_BASE,
            time.monotonic() - t))

    def stop(self):
        self.each(lambda c: self.pgserver('stop', '--data', c['data']))
        log('servers stopped')

    def load(self):
        """A fresh database on every cluster (no rows of another --rows left), loaded and vacuumed."""
        def one(c):
            with closing(self.connect(c, 'postgres')) as conn, conn.cursor() as cur:
                cur.execute('DROP DATABASE IF EXISTS %s WITH (FORCE)' % DB)
            subprocess.run([str(MAIN_BIN / 'python'), str(ROOT / 'tests' / 'utils' / 'demo_data.py'),
                            '--rows', str(self.args.rows), '--dsn', self.dsn(c), '--create-db', DB],
                           env=clean_env(), check=True, capture_output=True, text=True)
            with closing(self.connect(c)) as conn, conn.cursor() as cur:
                for table in self.tables:
                    cur.execute('VACUUM (ANALYZE) %s' % table)   # hint bits, visibility map, statistics
                cur.execute('SELECT version(), pg_size_pretty(sum(pg_table_size(c.oid))) FROM pg_class c'
                            ' WHERE relname = ANY(%s)', (self.tables,))
                return cur.fetchone()
        t = time.monotonic()
        out = self.each(one)
        self.version, self.size = out[0]
        log('data ready: %d rows per table, %s per cluster (%.0f s)' % (self.args.rows, self.size,
                                                                        time.monotonic() - t))

    def drop_indexes(self):
        def one(c):
            with closing(self.connect(c)) as conn, conn.cursor() as cur:
                for name in self.names:
                    cur.execute('DROP INDEX IF EXISTS %s' % name)
                cur.execute('CHECKPOINT')
        self.each(one)

    def valid_indexes(self):
        """{host: count of the six that are valid and ready}."""
        def one(c):
            try:
                with closing(self.connect(c)) as conn, conn.cursor() as cur:
                    cur.execute('SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid'
                                ' WHERE c.relname = ANY(%s) AND i.indisvalid AND i.indisready', (self.names,))
                    return cur.fetchone()[0]
            except psycopg2.Error as e:   # a cluster that went away: reported as a failed run, not a crash
                log('cannot count the indexes on %s: %s' % (c['host'], str(e).strip()))
                return None
        return dict(zip((c['host'] for c in self.clusters), self.each(one)))

    # ----------------------------------------------------------------------- inventory and runs
    def write_inventory(self):
        """(Re)written before every run: bench/run.py empties bench/results/work when it starts."""
        python = str(MAIN_BIN / 'python')   # the venv's python (absolute, not resolved: psycopg2 lives there)
        hosts = {c['host']: {'ansible_connection': 'local', 'ansible_python_interpreter': python,
                             'pgindex_connection': {'login_host': '127.0.0.1', 'login_port': c['port'],
                                                    'login_user': 'postgres', 'db': DB}}
                 for c in self.clusters}
        inv = {'all': {'children': {
            'pgindex_bastions': {'hosts': {'localhost': {'ansible_connection': 'local',
                                                         'ansible_python_interpreter': python}}},
            'pgindex_databases': {'hosts': hosts}}}}
        (WORK / 'reports').mkdir(parents=True, exist_ok=True)
        self.inventory.write_text('---\n# written by bench/fleet.py\n' + yaml.safe_dump(inv, sort_keys=False))

    def playbook(self, kind, rep):
        tag = '%s.r%d' % (kind, rep)
        self.write_inventory()
        timing = WORK / ('%s.timing.json' % tag)
        if timing.exists():
            timing.unlink()
        env = clean_env(ANSIBLE_CONFIG=str(ROOT / 'ansible.cfg'),
                        ANSIBLE_FORKS=str(self.args.forks),
                        ANSIBLE_CALLBACK_PLUGINS=str(BENCH / 'callback_plugins'),
                        ANSIBLE_CALLBACKS_ENABLED='bench_timing',
                        ANSIBLE_NOCOLOR='1',
                        BENCH_TIMING_FILE=str(timing))
        extra = {**PLAYBOOK_VARS, 'pgindex_report_dir': str(WORK / 'reports')}
        cmd = [str(MAIN_BIN / 'ansible-playbook'), 'playbooks/deploy_indexes.yml', '-i', str(self.inventory),
               '-e', json.dumps(extra)]
        load = os.getloadavg()[0]
        plays, recap, in_recap = [], {}, False
        t0 = time.time()
        with open(WORK / ('%s.out' % tag), 'w') as out:
            p = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True, bufsize=1)
            for line in p.stdout:
                out.write(line)
                if line.startswith('PLAY RECAP'):
                    in_recap = True
                elif line.startswith('PLAY ['):
                    plays.append(round(time.time() - t0, 2))   # one per batch of the serial rollout
                elif in_recap:
                    m = RECAP_RE.match(line.strip())
                    if m:
                        recap[m.group(1)] = {k: int(v) for k, v in re.findall(r'(\w+)=(\d+)', m.group(2))}
            rc = p.wait()
        wall = time.time() - t0
        r = {'kind': kind, 'rep': rep, 'wall_s': wall, 'rc': rc, 'start': t0, 'loadavg_1m_before': load,
             'batch_starts_s': plays,
             'changed': sum(h.get('changed', 0) for h in recap.values()) if recap else None,
             'recap': recap, 'valid_indexes': self.valid_indexes()}
        if timing.exists():
            r['tasks'] = json.loads(timing.read_text())
        bad = [h for h, n in r['valid_indexes'].items() if n != len(self.names)]
        if rc != 0 or bad or len(recap) != len(self.clusters):
            log('!' * 72)
            log('!!! FAILED: %s rep %d: exit code %d, %d of %d hosts in the recap, clusters without the six'
                ' valid indexes: %s (see %s)' % (kind, rep, rc, len(recap), len(self.clusters),
                                                 ', '.join(bad) or 'none', WORK / ('%s.out' % tag)))
            log('!' * 72)
            r['failed'] = True
        return r


def git_state():
    def git(*a):
        return subprocess.run(['git', *a], cwd=ROOT, capture_output=True, text=True, check=False).stdout.rstrip('\n')
    return {'commit': git('rev-parse', '--short', 'HEAD'),
            'modified': [line[3:] for line in git('status', '--porcelain', '--', 'roles', 'plugins', 'playbooks')
                         .splitlines()]}


# --------------------------------------------------------------------------- report
def _med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _fmt(v, digits=1):
    return '-' if v is None else ('%.' + str(digits) + 'f') % v


def median_run(runs):
    """The run with the median wall time (the lower middle one for an even count)."""
    if not runs:
        return None
    return sorted(runs, key=lambda r: r['wall_s'])[(len(runs) - 1) // 2]


def render_fleet(doc) -> list[str]:
    """BENCHMARKS.md lines for one fleet result (bench/results/fleet-<N>x<rows>.json)."""
    n, rows, forks = doc['clusters'], doc['rows'], doc['forks']
    deploys = [r for r in doc['runs'] if r['kind'] == 'deploy']
    noops = [r for r in doc['runs'] if r['kind'] == 'noop']
    out = ['## Fleet: %d clusters x %s rows (forks %d)\n' % (n, format(rows, ','), forks)]
    out.append(
        'bench/fleet.py: %d local PostgreSQL 18 servers (autovacuum off), each with the six runbook tables of %s '
        'rows; one inventory (%d hosts in pgindex_databases, local connection, `pgindex_connection` per host; the '
        'modules run on localhost); `ansible-playbook playbooks/deploy_indexes.yml` with ANSIBLE_FORKS=%d and '
        'latency sampling off: once with the six indexes dropped everywhere (deploy), then %d time(s) with them in '
        'place (no-op). The rollout is canary-first (`serial: [1, \'100%%\']`): one cluster, then the other %d '
        'together. Wall time of the whole command; %s CPUs (shared with other benchmarks); %s; started %s, '
        'finished %s.\n' % (
            n, format(rows, ','), n, forks, len(noops), n - 1, doc['machine']['cpus'],
            (doc.get('server') or '').split(' on ')[0], doc.get('started', '?'), doc.get('finished', '?')))
    out.append('| run | runs | wall median (s) | min (s) | max (s) | changed (median, all hosts) | ok |')
    out.append('|---|---|---|---|---|---|---|')
    for label, rs in (('deploy (builds 6 indexes x %d clusters)' % n, deploys), ('no-op re-run', noops)):
        if not rs:
            continue
        walls = [r['wall_s'] for r in rs]
        failed = [r for r in rs if r.get('failed') or r['rc'] != 0]
        out.append('| %s | %d | %s | %s | %s | %s | %s |' % (
            label, len(rs), _fmt(_med(walls)), _fmt(min(walls)), _fmt(max(walls)),
            _fmt(_med([r.get('changed') for r in rs]), 0),
            'yes' if not failed else '**NO**: %d failed (exit codes %s)' % (
                len(failed), ', '.join(str(r['rc']) for r in failed))))
    noop = _med([r['wall_s'] for r in noops])
    if noop is not None:
        failed = any(r.get('failed') or r['rc'] != 0 for r in noops)
        if failed:
            verdict = '**not met** (failed runs)'
        elif n != TARGET_CLUSTERS:
            verdict = '- (measured with %d clusters, not %d)' % (n, TARGET_CLUSTERS)
        else:
            verdict = 'met' if noop <= TARGET_NOOP_S else '**not met**'
        out.append('\n| target | measured | |')
        out.append('|---|---|---|')
        out.append('| fleet of %d clusters as a no-op <= %.0f s | %s s | %s |' % (
            TARGET_CLUSTERS, TARGET_NOOP_S, _fmt(noop), verdict))
    r = median_run(noops)
    if r and r.get('tasks'):
        tasks = sorted(r['tasks']['tasks'], key=lambda t: t['seconds'], reverse=True)[:8]
        b = r.get('batch_starts_s') or []
        where = ''
        if len(b) == 2:
            where = (' Ansible start-up to the first batch %s s, canary batch (1 cluster) %s s, second batch'
                     ' (%d clusters, to the end of the command) %s s.' % (
                         _fmt(b[0]), _fmt(b[1] - b[0]), n - 1, _fmt(r['wall_s'] - b[1])))
        files = {}
        for t in r['tasks']['tasks']:
            files[t['file'] or '-'] = files.get(t['file'] or '-', 0.0) + t['seconds']
        where += ' By file: %s.' % ', '.join('%s %.1f s' % (k, v) for k, v in
                                             sorted(files.items(), key=lambda kv: -kv[1])[:6])
        out.append('\n### Where the median no-op run (rep %d, %s s) spends its time (bench_timing, top 8 tasks)\n'
                   % (r['rep'], _fmt(r['wall_s'])))
        out.append('Seconds are wall time from a task\'s start to the next one\'s, with every host of the batch in '
                   'it; runs counts both batches (and loop includes). Callback total %s s of %s s wall.%s\n' % (
                       _fmt(r['tasks'].get('total')), _fmt(r['wall_s']), where))
        out.append('| task | file | runs | seconds |')
        out.append('|---|---|---|---|')
        for t in tasks:
            out.append('| %s | %s | %d | %.2f |' % (t['task'].split(' : ')[-1].replace('|', '/'), t['file'] or '-',
                                                    t['count'], t['seconds']))
    out.append('')
    return out


# --------------------------------------------------------------------------- main
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--clusters', type=int, default=10)
    ap.add_argument('--rows', type=int, default=20_000, help='rows per table in every cluster')
    ap.add_argument('--reps', type=int, default=3, help='no-op re-runs after the first deploy')
    ap.add_argument('--forks', type=int, default=10)
    ap.add_argument('--keep', action='store_true', help='leave the clusters running')
    ap.add_argument('--render', metavar='FILE', help='print the BENCHMARKS.md lines of a result file and exit')
    ap.add_argument('--out', help='JSON result (default bench/results/fleet-<clusters>x<rows>.json)')
    args = ap.parse_args(argv)
    if args.render:
        print('\n'.join(render_fleet(json.loads(Path(args.render).read_text()))))
        return 0
    if not 1 <= args.clusters <= 99:
        ap.error('--clusters must be 1..99')
    out = Path(args.out) if args.out else RESULTS / ('fleet-%dx%d.json' % (args.clusters, args.rows))
    WORK.mkdir(parents=True, exist_ok=True)

    f = Fleet(args)
    doc = {'clusters': args.clusters, 'rows': args.rows, 'forks': args.forks, 'reps': args.reps,
           'started': datetime.now(timezone.utc).isoformat(timespec='seconds'),
           'machine': {'cpus': os.cpu_count(), 'platform': platform.platform()},
           'settings': SERVER_SETTINGS, 'playbook_vars': PLAYBOOK_VARS, 'git': git_state(), 'runs': []}
    try:
        f.start()
        f.load()
        doc['server'] = f.version
        doc['data_size_per_cluster'] = f.size
        f.drop_indexes()
        runs = [('deploy', 0)] + [('noop', rep) for rep in range(args.reps)]
        for kind, rep in runs:
            r = f.playbook(kind, rep)
            doc['runs'].append(r)
            log('  %-6s rep %d: wall %6.1f s  rc %d  changed %s  batches at %s s' % (
                kind, rep, r['wall_s'], r['rc'], r['changed'], ', '.join(_fmt(b) for b in r['batch_starts_s'])))
            doc['finished'] = datetime.now(timezone.utc).isoformat(timespec='seconds')
            out.write_text(json.dumps(doc, indent=1))   # after every run: partial results survive
        log('results: %s' % out)
    finally:
        if not args.keep:
            f.stop()
    failed = [r for r in doc['runs'] if r.get('failed')]
    if failed:
        log('!!! %d of %d runs FAILED: %s' % (len(failed), len(doc['runs']), ', '.join(
            '%s rep %d (exit code %d)' % (r['kind'], r['rep'], r['rc']) for r in failed)))
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())

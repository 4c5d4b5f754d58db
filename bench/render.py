#!/usr/bin/env python
"""Render BENCHMARKS.md (and bench/results/writers-<rows>.png) from bench/results/bench-*.json.

    bench/.venv/bin/python bench/render.py

Medians over the repetitions. Ratios to the runbook are paired: each repetition's build phase is
divided by the runbook's build phase of the same repetition, then the median is taken.
The hand-written analysis (bench/analysis.md) is appended as it is.
"""
from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / 'results'
OUT = ROOT / 'BENCHMARKS.md'
PLAYBOOKS = ('community', 'ours_default', 'ours_offpeak', 'ours_tuned', 'ours_fast', 'ours_sampling')
# issue 13's targets
TARGET_OFFPEAK_RATIO = 0.8
TARGET_OFFPEAK_LIMIT = 1.15
TARGET_DEFAULT_RATIO = 1.0
TARGET_DEFAULT_P99_VS_RUNBOOK = 1.25
TARGET_CPU_VS_RUNBOOK = 1.1
TARGET_OVERHEAD_13 = 4.0
TARGET_NOOP_13 = 3.0
TARGET_ETA_ERROR = 0.3
TARGET_FLEET_NOOP = 15.0
TARGET_RATIO = 0.75
TARGET_OVERHEAD = 5.0
TARGET_NOOP = 5.0
TARGET_P99_FACTOR = 2.0
TARGET_STALL_MS = 1000.0


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, unit='', digits=1):
    if v is None:
        return '-'
    return ('%.' + str(digits) + 'f%s') % (v, unit)


def by_method(doc):
    runs = defaultdict(list)
    for r in doc['runs']:
        runs[r['method']].append(r)
    return runs


def paired_ratio(doc, method):
    base = {r['rep']: r['build_s'] for r in doc['runs'] if r['method'] == 'runbook' and r.get('build_s')}
    return med([r['build_s'] / base[r['rep']] for r in doc['runs']
                if r['method'] == method and r.get('build_s') and r['rep'] in base])


def summary(doc):
    """Per method medians: build, ratio, wall, overhead, writers."""
    runs = by_method(doc)
    idle_p99 = med([r['writers']['p99_ms'] for r in runs.get('idle', [])])
    # the writers' own server CPU per second (idle method), subtracted from every method's
    idle_rate = med([r['server_cpu_s'] / r.get('cpu_span_s', r['wall_s']) for r in runs.get('idle', [])
                     if r.get('server_cpu_s') is not None])
    rows = {}
    for method in doc['methods']:
        rs = runs.get(method, [])
        if not rs:
            continue
        build = med([r.get('build_s') for r in rs])
        wall = med([r['wall_s'] for r in rs])
        p99 = med([r['writers']['p99_ms'] for r in rs])
        rows[method] = {
            'n': len(rs),
            'build': build,
            'ratio': paired_ratio(doc, method) if method != 'idle' else None,
            'wall': wall if method != 'idle' else None,
            'overhead': med([r['wall_s'] - r['build_s'] for r in rs if r.get('build_s')]),
            'pre': med([r['build_start'] - r['start'] for r in rs if r.get('build_s')]),
            'post': med([r['start'] + r['wall_s'] - r['build_end'] for r in rs if r.get('build_s')]),
            'cpu': med([r['server_cpu_s'] - (idle_rate or 0) * r.get('cpu_span_s', r['wall_s']) for r in rs
                        if r.get('server_cpu_s') is not None]) if method != 'idle' else None,
            'p50': med([r['writers']['p50_ms'] for r in rs]),
            'p99': p99,
            'p99_factor': p99 / idle_p99 if p99 and idle_p99 else None,
            'max': max(r['writers']['max_ms'] or 0 for r in rs),
            'max_med': med([r['writers']['max_ms'] for r in rs]),
            'failed': sum(r['writers']['failed'] for r in rs),
            'ok': all(not any(r['rc']) for r in rs) and all(r.get('valid_indexes', 6) == 6 for r in rs),
            'idle_in_build': med([r.get('concurrency_s', {}).get('0') for r in rs]),
            'one_in_build': med([r.get('concurrency_s', {}).get('1') for r in rs]),
            'two_in_build': med([sum(v for k, v in r.get('concurrency_s', {}).items() if int(k) >= 2)
                                 for r in rs if r.get('concurrency_s')]),
        }
    return rows


def eta_table(runs):
    """[(label 'method rN: index', error, entry)] over the playbook methods' runs with ETA samples."""
    found = []
    for method in ('ours_default', 'ours_offpeak'):
        for r in runs.get(method, []):
            for name, e in sorted((r.get('eta') or {}).items()):
                if e.get('error') is not None:
                    found.append(('%s r%d: %s' % (method, r['rep'] + 1, name), e['error'], e))
    return found


def fleet_result():
    """The newest bench/results/fleet-*.json, summarized: clusters, median no-op wall, runs."""
    files = sorted(RESULTS.glob('fleet-*.json'), key=lambda p: p.stat().st_mtime)
    if not files:
        return None
    doc = json.loads(files[-1].read_text())
    noops = [r['wall_s'] for r in doc.get('runs', []) if r.get('kind') == 'noop']
    return dict(clusters=doc.get('clusters'), noop=med(noops), n=len(noops), doc=doc)


def task_profile(runs, top=12):
    """Median seconds per task (and per role file) over the repetitions of one playbook method."""
    per_task, per_file, counts = defaultdict(list), defaultdict(list), {}
    for r in runs:
        files = defaultdict(float)
        for t in r.get('tasks', {}).get('tasks', []):
            key = '%s: %s' % (t['file'], t['task'].split(' : ')[-1])
            per_task[key].append(t['seconds'])
            counts[key] = t['count']
            files[t['file']] += t['seconds']
        for f, s in files.items():
            per_file[f].append(s)
    tasks = sorted(((med(v), counts[k], k) for k, v in per_task.items()), reverse=True)[:top]
    files = sorted(((med(v), f) for f, v in per_file.items()), reverse=True)
    return tasks, files


def plot(doc, path):
    runs = by_method(doc)
    methods = [m for m in doc['methods'] if runs.get(m)]
    fig, axes = plt.subplots(len(methods), 1, figsize=(10, 1.9 * len(methods)), sharey=True)
    if len(methods) == 1:
        axes = [axes]
    for ax, method in zip(axes, methods):
        rs = runs[method]
        # the repetition with the median build phase (or wall time for idle)

        def key(run):
            return run.get('build_s') or run['wall_s']
        r = sorted(rs, key=key)[len(rs) // 2]
        xs = [p[0] for p in r['writers']['series']]
        ys = [max(p[1], 0.05) for p in r['writers']['series']]
        ax.plot(xs, ys, lw=0.8, color='tab:blue')
        ax.axvspan(0, r['wall_s'], color='tab:gray', alpha=0.12, label='command running')
        if r.get('build_s'):
            b0 = r['build_start'] - r['start']
            ax.axvspan(b0, b0 + r['build_s'], color='tab:orange', alpha=0.25, label='build phase')
        ax.set_yscale('log')
        ax.set_ylim(0.1, 1e5)
        ax.axhline(1000, color='tab:red', lw=0.6, ls='--')
        ax.set_title('%s (rep %d): writer latency, max per 0.25 s' % (method, r['rep'] + 1), fontsize=9, loc='left')
        ax.set_ylabel('ms', fontsize=8)
        ax.tick_params(labelsize=7)
    axes[-1].set_xlabel('seconds since the command started')
    axes[0].legend(fontsize=7, loc='upper right')
    fig.suptitle('%s rows per table, writers at %d ops/s (red: 1 s)' % (format(doc['rows'], ','), doc['rate']),
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def section(doc):
    rows = summary(doc)
    idle = rows.get('idle', {})
    runs = by_method(doc)
    out = []
    n = doc['rows']
    out.append('## %s rows per table\n' % format(n, ','))
    out.append('%s; data %s; %d repetition(s), interleaved; writers %d ops/s; %s CPUs; started %s, finished %s.\n' % (
        (doc.get('server') or '').split(' on ')[0], doc.get('data_size', '?'), len(doc['queries']['before']),
        doc['rate'], doc['machine']['cpus'], doc['started'], doc.get('finished', '?')))
    cores = doc['machine']['cpus']
    runbook_cpu = rows.get('runbook', {}).get('cpu')
    limit = runbook_cpu / cores if runbook_cpu else None
    out.append('| method | build phase (s) | vs runbook | vs CPU-bound limit | server CPU (s) | wall (s) '
               '| wall - build (s) [before / after] '
               '| writers p50 / p99 (ms) | p99 vs idle | longest stall (ms) | builds 0 / 1 / 2+ running (s) | ok |')
    out.append('|---|---|---|---|---|---|---|---|---|---|---|---|')
    for m, s in rows.items():
        out.append('| %s | %s | %s | %s | %s | %s | %s | %s / %s | %s | %s | %s | %s |' % (
            m, fmt(s['build'], digits=2), fmt(s['ratio'], 'x', 2),
            fmt(s['build'] / limit if s['build'] and limit else None, 'x', 2), fmt(s['cpu']), fmt(s['wall']),
            ('%s [%s / %s]' % (fmt(s['overhead']), fmt(s['pre']), fmt(s['post']))) if m in PLAYBOOKS else '-',
            fmt(s['p50']), fmt(s['p99']),
            fmt(s['p99_factor'], 'x') if m != 'idle' else '(baseline)', fmt(s['max'], digits=0),
            ' / '.join(fmt(s[k]) for k in ('idle_in_build', 'one_in_build', 'two_in_build')) if m != 'idle' else '-',
            ('yes' if s['ok'] else '**NO**') + ('' if not s['failed'] else ', %d writer errors' % s['failed'])))
    noop = med([r['wall_s'] for r in doc['noop']])
    out.append('\nNo-op re-run of deploy_indexes.yml (the six indexes exist; latency sampling off): '
               'median **%s s** over %d runs.\n' % (fmt(noop), len(doc['noop'])))
    if limit:
        text = ('CPU-bound limit of the six builds: the runbook\'s server CPU (%s s, writers\' share subtracted) / '
                '%d cores = **%s s**; no method can build faster on this machine.\n')
        out.append(text % (fmt(runbook_cpu), cores, fmt(limit, digits=2)))
    out.append('![writer latency during each method](bench/results/writers-%d.png)\n' % n)

    # targets
    ours = rows.get('ours_default', {})
    tuned = rows.get('ours_tuned', {})
    ref = rows.get('psql_parallel', {})

    def met(ok):
        return 'met' if ok else '**not met**'
    offpeak = rows.get('ours_offpeak', {})
    runbook = rows.get('runbook', {})
    out.append('### Targets of issue 13 (build phase as one controller-side loop)\n')
    out.append('| target | measured | |')
    out.append('|---|---|---|')
    if offpeak.get('ratio') is not None:
        out.append('| off-peak: build phase <= %.2fx the runbook | %s | %s |' % (
            TARGET_OFFPEAK_RATIO, fmt(offpeak['ratio'], 'x', 2), met(offpeak['ratio'] <= TARGET_OFFPEAK_RATIO)))
        if limit:
            v = offpeak['build'] / limit
            out.append('| off-peak: build phase <= %.2fx the CPU-bound limit (%s s) | %s | %s |' % (
                TARGET_OFFPEAK_LIMIT, fmt(limit, digits=2), fmt(v, 'x', 2), met(v <= TARGET_OFFPEAK_LIMIT)))
    lanes = rows.get('psql_lanes', {})
    if lanes.get('ratio') is not None:
        out.append('| (reference: the off-peak arrangement by hand, psql_lanes: two psql streams, no workers) '
                   '| %s the runbook, %s the CPU-bound limit | reference |' % (
                       fmt(lanes['ratio'], 'x', 2), fmt(lanes['build'] / limit, 'x', 2) if limit else '-'))
    if ours.get('ratio') is not None:
        out.append('| default: build phase <= %.2fx the runbook | %s | %s |' % (
            TARGET_DEFAULT_RATIO, fmt(ours['ratio'], 'x', 2), met(ours['ratio'] <= TARGET_DEFAULT_RATIO)))
    if ours.get('p99') and runbook.get('p99'):
        v = ours['p99'] / runbook['p99']
        out.append('| default: writers p99 <= %.2fx the runbook\'s | %s (%s vs %s ms) | %s |' % (
            TARGET_DEFAULT_P99_VS_RUNBOOK, fmt(v, 'x', 2), fmt(ours['p99']), fmt(runbook['p99']),
            met(v <= TARGET_DEFAULT_P99_VS_RUNBOOK)))
    if ours.get('cpu') and runbook_cpu:
        v = ours['cpu'] / runbook_cpu
        out.append('| server CPU of our deploy (default, sampling off) <= %.1fx the runbook\'s | %s (%s vs %s s) | %s |' % (
            TARGET_CPU_VS_RUNBOOK, fmt(v, 'x', 2), fmt(ours['cpu']), fmt(runbook_cpu), met(v <= TARGET_CPU_VS_RUNBOOK)))
    if ours.get('overhead') is not None:
        out.append('| whole command - build phase <= %.0f s (default, sampling off) | %s s | %s |' % (
            TARGET_OVERHEAD_13, fmt(ours['overhead']), met(ours['overhead'] <= TARGET_OVERHEAD_13)))
    if noop is not None:
        out.append('| no-op re-run <= %.0f s | %s s | %s |' % (TARGET_NOOP_13, fmt(noop), met(noop <= TARGET_NOOP_13)))
    eta_rows = eta_table(runs)
    if eta_rows:
        worst = max(eta_rows, key=lambda e: abs(e[1]))
        within = [e for e in eta_rows if abs(e[1]) <= TARGET_ETA_ERROR]
        out.append('| ETA at 50 %% of each build within +-%d %% (default and off-peak) | %d of %d builds within; '
                   'median error %+.0f %%, worst %+.0f %% (%s) | %s |' % (
                       TARGET_ETA_ERROR * 100, len(within), len(eta_rows), 100 * med([e[1] for e in eta_rows]),
                       100 * worst[1], worst[0], met(len(within) == len(eta_rows))))
    else:
        out.append('| ETA at 50 % of each build within +-30 % | no build long enough to sample at mid-build | - |')
    fleet = fleet_result()
    if fleet is not None:
        out.append('| fleet of %d clusters as a no-op <= %.0f s | %s s (median of %d; section "Fleet" below) | %s |' % (
            fleet['clusters'], TARGET_FLEET_NOOP, fmt(fleet['noop']), fleet['n'],
            met(fleet['noop'] is not None and fleet['noop'] <= TARGET_FLEET_NOOP and fleet['clusters'] >= 10)))
    else:
        out.append('| fleet of 10 clusters as a no-op <= 15 s | not measured (bench/fleet.py) | - |')
    sampling = rows.get('ours_sampling', {})
    if sampling.get('overhead') is not None and ours.get('overhead') is not None:
        out.append('| (sampling on: its cost, wall - build on minus off; was 6.7 s at 5M before) | %s s (%s vs %s s) | '
                   'reported |' % (fmt(sampling['overhead'] - ours['overhead']), fmt(sampling['overhead']),
                                   fmt(ours['overhead'])))
    floor = doc.get('floor') or []
    if floor:
        out.append('| (the floor here: ansible-playbook with one debug task / with one module run) | %s s / %s s '
                   '| measured |' % (fmt(med([f['floor_debug'] for f in floor])),
                                     fmt(med([f['floor_module'] for f in floor]))))
    if eta_rows:
        out.append('\n### ETA at mid-build (the loop\'s ETA nearest to 50 % of each build vs the time it still took)\n')
        out.append('| method, rep | index | build (s) | sampled at | phase | ETA (s) | truth (s) | error |')
        out.append('|---|---|---|---|---|---|---|---|')
        for label, error, e in eta_rows:
            out.append('| %s | %s | %s | %.0f %% | %s | %s | %s | %+.0f %% |' % (
                label.split(': ')[0], label.split(': ')[1], fmt(e['duration_s']), 100 * e['at_fraction'], e['phase'],
                fmt(e['eta_s']), fmt(e['truth_s']), 100 * error))
    out.append('\n### Earlier targets\n')
    out.append('| target | measured | |')
    out.append('|---|---|---|')
    fast = rows.get('ours_fast', {})
    for label, s in (('default', ours), ('tuned', tuned), ('parallelism 6, interval 1 s', fast)):
        if s.get('ratio') is not None:
            out.append('| build phase <= %.2fx the runbook (%s) | %s | %s |' % (
                TARGET_RATIO, label, fmt(s['ratio'], 'x', 2), met(s['ratio'] <= TARGET_RATIO)))
    if ref.get('ratio') is not None:
        out.append('| (reference: two hand-run psql streams, 256MB) | %s | |' % fmt(ref['ratio'], 'x', 2))
    for label, s in (('default, sampling off', ours), ('tuned, sampling off', tuned),
                     ('default, sampling on', rows.get('ours_sampling', {}))):
        if s.get('overhead') is not None:
            out.append('| fixed end-to-end overhead <= %.0f s (%s) | %s s | %s |' % (
                TARGET_OVERHEAD, label, fmt(s['overhead']), met(s['overhead'] <= TARGET_OVERHEAD)))
    if noop is not None:
        out.append('| no-op re-run < %.0f s | %s s | %s |' % (TARGET_NOOP, fmt(noop), met(noop < TARGET_NOOP)))
    for label, s in (('default', ours), ('tuned', tuned), ('parallelism 6, interval 1 s', fast)):
        if s.get('p99_factor') is not None:
            out.append('| writers p99 <= %.0fx idle (%s) | %s (%s vs %s ms) | %s |' % (
                TARGET_P99_FACTOR, label, fmt(s['p99_factor'], 'x'), fmt(s['p99']), fmt(idle.get('p99')),
                met(s['p99_factor'] <= TARGET_P99_FACTOR)))
            out.append('| no writer stall over 1 s (%s) | longest %s ms | %s |' % (
                label, fmt(s['max'], digits=0), met(s['max'] <= TARGET_STALL_MS)))

    # queries
    before, after = doc['queries']['before'], doc['queries']['after']
    if before:
        out.append('\n### Verification queries, p95 (ms; %d samples each, median over repetitions)\n' % 15)
        out.append('| query | before (no index) | after |')
        out.append('|---|---|---|')
        for label in before[0]:
            out.append('| %s | %s | %s |' % (label, fmt(med([b[label]['p95_ms'] for b in before]), digits=2),
                                             fmt(med([a[label]['p95_ms'] for a in after]), digits=2)))

    # where the playbook's time goes
    for method in ('ours_default', 'ours_offpeak', 'ours_tuned', 'ours_fast'):
        if not runs.get(method):
            continue
        tasks, files = task_profile(runs[method])
        out.append('\n### Where %s spends its time (per task, median; bench_timing callback)\n' % method)
        out.append('By role file: ' + ', '.join('%s %.1f s' % (f, s) for s, f in files[:8]) + '.\n')
        out.append('| task | runs | seconds |')
        out.append('|---|---|---|')
        for s, c, k in tasks:
            out.append('| %s | %d | %.2f |' % (k.replace('|', '/'), c, s))
        r = sorted(runs[method], key=lambda r: r.get('build_s') or 0)[len(runs[method]) // 2]
        if r.get('intervals'):
            out.append('\nBuild timeline of the median repetition (s from the first CREATE): ' + '; '.join(
                '%s %.1f-%.1f' % (k, v[0], v[1]) for k, v in sorted(r['intervals'].items(), key=lambda kv: kv[1][0])) + '.\n')
    if runs.get('runbook'):
        r = sorted(runs['runbook'], key=lambda r: r.get('build_s') or 0)[len(runs['runbook']) // 2]
        out.append('\nRunbook timeline of the median repetition: ' + '; '.join(
            '%s %.1f-%.1f' % (k, v[0], v[1]) for k, v in sorted(r['intervals'].items(), key=lambda kv: kv[1][0])) + '.\n')
    return '\n'.join(out)


def main():
    docs = []
    for p in sorted(RESULTS.glob('bench-*.json'), key=lambda p: int(p.stem.split('-')[1])):
        doc = json.loads(p.read_text())
        if doc['runs']:
            docs.append(doc)
    if not docs:
        print('render: no results in %s' % RESULTS, file=sys.stderr)
        return 1
    parts = ['# Benchmarks: index deployment, runbook vs community.postgresql vs chefcloud.pgindex\n',
             '*Generated by `bench/render.py` from `bench/results/bench-*.json` (`make bench`, '
             '`make bench ROWS=5000000`). Hand-written analysis at the end (bench/analysis.md).*\n',
             '## Method\n',
             '- One embedded PostgreSQL 18 (tests/utils/pgserver.py; fsync off, shared_buffers 128MB, '
             'maintenance_work_mem 64MB default, autovacuum off, max_wal_size 8GB), its own data dir '
             '(/var/tmp/pgindex/bench) and port (54339); the six runbook tables from tests/utils/demo_data.py.',
             '- Methods, each repetition in a rotated order (interleaved), medians reported:']
    for m, d in docs[-1]['descriptions'].items():
        parts.append('  - `%s`: %s' % (m, d))
    parts += [
        '- Before every method: DROP INDEX of the six, the writer\'s inserted rows deleted, VACUUM, CHECKPOINT, '
        '3 s settle; the writer starts 2 s before the command and stops 2 s after it.',
        '- **Build phase**: start of the first CREATE INDEX of the six to the end of the last (the moment '
        'the last index is valid), from the server log (`log_min_duration_statement = 0`, `log_line_prefix` '
        '`%m`; start = log time - duration) - the same for every method. **Wall**: the whole command '
        '(for the playbooks: preflight, df, build, verify, report). **wall - build**: the fixed overhead.',
        '- **Writers**: bench/workload.py, its own process and connection, INSERT and UPDATE round-robin over '
        'the six tables, open loop at a fixed rate; latency counted from the moment each operation was due, '
        'so a blocked writer and the operations queued behind it count in full. p50/p99 over the operations '
        'due while the command ran; the longest stall is the largest such latency over all repetitions.',
        '- **Queries**: the six verification queries of the change set, p95 before (no index) and after the build.',
        '- The machine: 2 vCPUs, shared and noisy; everything on one host (client, Ansible, server).\n']
    for doc in reversed(docs):  # largest first
        plot(doc, RESULTS / ('writers-%d.png' % doc['rows']))
        parts.append(section(doc))
    fleet = fleet_result()
    if fleet is not None:
        sys.path.insert(0, str(BENCH))
        from fleet import render_fleet  # bench/fleet.py
        parts.append('\n'.join(render_fleet(fleet['doc'])) + '\n')
    analysis = BENCH / 'analysis.md'
    if analysis.exists():
        parts.append(analysis.read_text())
    OUT.write_text('\n'.join(parts) + '\n')
    print('wrote %s' % OUT)
    return 0


if __name__ == '__main__':
    sys.exit(main())

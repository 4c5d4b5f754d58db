# -*- coding: utf-8 -*-
# Copyright: ChefCloud Platform Engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: pgindex_report
short_description: Assemble the run record of a chefcloud.pgindex run (deploy, rollback, verify)
version_added: 1.0.0
author:
  - ChefCloud Platform Engineering (@chefcloud)
description:
  - Takes what one run of the role produced (any of it may be missing - the build may not have started, the
    verification may not have run, an index result may be a failure) and returns the whole report - the run
    record (start and end, operator, host, database, AWX job and workflow), the exact SQL executed, the preflight
    results with the df figures and the host that measured them, estimates against actual durations, the
    verification, the post-deploy watch with its series and verdict, and the runbook's Success Criteria, each
    V(pass), V(fail) or V(not measured) - plus the lines of the table the role prints.
  - Never fails on missing input, so the report is written on every run, failed runs included.
options:
  _input:
    description:
      - The run's inputs, a dictionary. Every key is optional - C(changeset), C(host), C(entry_point),
        C(check_mode), C(started_at), C(finished_at), C(indexes) (the change set), C(build_result)
        (pg_index_set's result), C(results) (the role's older C(pgindex_results)), C(preflight),
        C(preflight_results), C(baseline), C(verification), C(watch), C(snapshot), C(rollback),
        C(target_reduction), C(awx) (the C(awx_*)/C(tower_*) extra variables), C(local_user), C(report_file).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Assemble the report
  ansible.builtin.set_fact:
    pgindex_report_out: "{{ {'changeset': pgindex_changeset_name, 'verification': pgindex_verification | default(none)}
                            | chefcloud.pgindex.pgindex_report }}"
"""

RETURN = r"""
_value:
  description:
    - C(report), the whole report (written as JSON; the Markdown template reads it), and C(lines), the table
      printed in the play output.
  type: dict
"""

import getpass
import re

try:
    from jinja2 import Undefined
except ImportError:  # pragma: no cover - jinja2 ships with ansible-core
    Undefined = ()

SECRET_NAME = re.compile(r'pass|secret|token|key', re.I)
NOT_MEASURED = 'not measured'
BUILT = ('created', 'rebuilt', 'replaced')
ROW_KEYS = ('name', 'schema', 'table', 'state', 'label', 'exists', 'valid', 'definition_matches', 'size_bytes', 'size',
            'amcheck', 'plan', 'scan', 'scan_before', 'p95_before_ms', 'p95_before_lower_bound', 'samples_before',
            'p95_after_ms', 'p95_after_lower_bound', 'samples_after', 'p50_after_ms', 'p99_after_ms', 'reduction_pct',
            'target_pct', 'meets_target', 'at_least', 'latency', 'latency_note', 'pgss_calls', 'pgss_mean_ms',
            'idx_scan', 'ok', 'problems')


def _clean(value):
    """Ansible's undefined values (and anything Jinja could not resolve) as None, recursively for containers."""
    if Undefined and isinstance(value, Undefined):
        return None
    if isinstance(value, dict):
        return dict((k, _clean(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _dict(value):
    return value if isinstance(value, dict) else {}


def _first(*values):
    """The first of ``values`` that is set."""
    return next((value for value in values if value), None)


def _qualified(row):
    return '%s.%s' % (row.get('schema') or 'public', row['name'])


def _list(value):
    return value if isinstance(value, list) else []


def operator(awx, local_user=None):
    """Who ran it: the AWX job's user (awx_user_name / tower_user_name), else the local user."""
    for key in ('awx_user_name', 'tower_user_name'):
        if awx.get(key):
            return dict(name=awx[key], email=awx.get(key.replace('_name', '_email')), source='awx (%s)' % key)
    if local_user:
        return dict(name=local_user, email=None, source='local user')
    try:
        return dict(name=getpass.getuser(), email=None, source='local user')
    # no user name in the environment nor in passwd
    except Exception:  # pylint: disable=broad-except
        return dict(name=None, email=None, source='unknown')


def awx_record(awx):
    """The AWX job and workflow the run belongs to, from the extra vars the controller passes (no secrets)."""
    awx = dict((k, v) for k, v in awx.items() if isinstance(v, (str, int, float, bool)) and not SECRET_NAME.search(k))
    if not awx:
        return None

    def pick(name):
        return awx.get('awx_' + name, awx.get('tower_' + name))
    workflow_id = pick('workflow_job_id')
    return dict(
        job_id=pick('job_id'), job_template=pick('job_template_name'), job_launch_type=pick('job_launch_type'),
        project_revision=pick('project_revision'), schedule=pick('schedule_name'),
        workflow_job_id=workflow_id, workflow_job_name=pick('workflow_job_name'),
        workflow_job_template=pick('workflow_job_template_name'),
        approval=(dict(
            status='approved',
            detail=('this job is a node of workflow job %s (%s), which reaches the deploy only after its approval node '
                    'was approved; the approver and time are in the controller: /api/v2/workflow_jobs/%s/'
                    'workflow_nodes/ and /api/v2/workflow_approvals/?workflow_job=%s'
                    % (workflow_id, pick('workflow_job_name'), workflow_id, workflow_id)))
                  if workflow_id else None),
        extra_vars=awx)


def build_entries(build_result, results):
    """The index results of the build, whatever reached us: pg_index_set's result, or the role's pgindex_results."""
    entries = _list(_dict(build_result).get('indexes'))
    if not entries:
        entries = [e for e in _list(_dict(results).get('results')) if isinstance(e, dict) and e.get('name')]
    return [e for e in entries if isinstance(e, dict)]


def estimates_by_name(build_result):
    """{index: seconds} of the estimates the build loop made (a dict by name, or a list of {name, estimate_s})."""
    raw = _dict(build_result).get('estimates')
    found = {}
    if isinstance(raw, dict):
        for name, value in raw.items():
            found[name] = value.get('estimate_s') if isinstance(value, dict) else value
    for item in _list(raw):
        if isinstance(item, dict) and item.get('name'):
            found[item['name']] = item.get('estimate_s', item.get('seconds'))
    return found


def _row(summary, entry, estimate):
    row = dict((key, None) for key in ROW_KEYS)
    row.update(problems=[], samples_before=0, samples_after=0)
    row.update(summary or {})
    entry = entry or {}
    for key in ('name', 'schema', 'table'):
        if row.get(key) is None:
            row[key] = entry.get(key)
    failed = bool(entry.get('failed'))
    row.update(action=entry.get('action'), build_duration_s=entry.get('duration_s'), estimate_s=estimate,
               build_failed=failed, build_error=entry.get('error') or (entry.get('msg') if failed else None),
               queries=_list(entry.get('queries')), leftovers=_list(entry.get('leftovers')),
               cleaned_up=_list(entry.get('cleaned_up')))
    if entry.get('duration_s') is not None and estimate:
        row['estimate_error_pct'] = round((entry['duration_s'] - estimate) / float(estimate) * 100.0, 1)
    else:
        row['estimate_error_pct'] = None
    if failed:
        row['ok'] = False
        row['problems'] = list(row['problems']) + ['build failed: %s' % row['build_error']]
    return row


def index_rows(changeset, verification, entries, estimates):
    """One row per index: the verification summary joined with the build result of the same name."""
    summaries = [s for s in _list(_dict(verification).get('summary')) if isinstance(s, dict) and s.get('name')]
    by_name = dict((e.get('name'), e) for e in entries)
    names = [s['name'] for s in summaries]
    names += [e.get('name') for e in entries if e.get('name') not in names]
    names += [i.get('name') for i in changeset if isinstance(i, dict) and i.get('name') not in names]
    summary_by_name = dict((s['name'], s) for s in summaries)
    rows = []
    for name in names:
        if name is None:
            continue
        entry = by_name.get(name) or {}
        row = _row(summary_by_name.get(name), entry, estimates.get(name, entry.get('estimate_s')))
        row['name'] = name
        if row['table'] is None:
            item = next((i for i in changeset if isinstance(i, dict) and i.get('name') == name), {})
            row['table'], row['schema'] = item.get('table'), row['schema'] or item.get('schema')
        rows.append(row)
    return rows


def _criterion(name, target, status, measured, detail=None):
    return dict(criterion=name, target=target, status=status, measured=measured, detail=detail)


def success_criteria(rows, entries, build_result, verification, watch, target_pct, state, rolled_back=()):
    """The runbook's Success Criteria table, each pass, fail or not measured, with what was measured.
    ``rolled_back``: the indexes the guard dropped after the watch (schema.name) - they do not count as created."""
    total = len(rows)
    dropped = [r for r in rows if r['name'] in rolled_back or _qualified(r) in rolled_back]
    criteria = []
    if state == 'absent':
        gone = [r for r in rows if r.get('exists') is False]
        criteria.append(_criterion('All indexes dropped', '%d/%d' % (total, total),
                                   'pass' if verification and len(gone) == total else ('fail' if verification else NOT_MEASURED),
                                   '%d/%d' % (len(gone), total) if verification else None,
                                   None if verification else 'not verified'))
    else:
        if verification:
            present = [r for r in rows if r.get('valid') is True and r.get('definition_matches') is not False]
            detail = 'valid and as defined after the run (pg_index_verify)'
        else:
            present = [r for r in rows if not r['build_failed'] and r.get('action') in BUILT + ('none',)]
            detail = 'from the build results (not verified)'
        if dropped:
            present = [r for r in present if r not in dropped]
            detail += '; then dropped by the guard\'s rollback: %s' % ', '.join(r['name'] for r in dropped)
        criteria.append(_criterion('All indexes created', '%d/%d' % (total, total),
                                   'pass' if total and len(present) == total else 'fail',
                                   '%d/%d' % (len(present), total), detail))
    failures = [r for r in rows if r['build_failed']]
    top = _dict(build_result)
    top_error = top.get('msg') if top.get('failed') and not failures else None
    failure_texts = ['%s: %s' % (r['name'], r['build_error']) for r in failures] + ([top_error] if top_error else [])
    errors = len(failures) + (1 if top_error else 0)
    started = bool(entries) or bool(top)
    criteria.append(_criterion('No deployment errors', '0 errors', ('pass' if errors == 0 else 'fail') if started else NOT_MEASURED,
                               '%d error(s)' % errors if started else None,
                               '; '.join(failure_texts) or (None if started else 'the build did not start')))
    if state != 'absent':
        measured = [r for r in rows if r.get('reduction_pct') is not None]
        missed = [r for r in measured if not r.get('meets_target')]
        criteria.append(_criterion(
            'p95 latency improvement', '>= %s %% reduction' % target_pct,
            NOT_MEASURED if not measured else ('pass' if not missed else 'fail'),
            ', '.join('%s %s%s %%' % (r['name'], '>= ' if r.get('at_least') else '', r['reduction_pct']) for r in measured) or None,
            ('missed by %s' % ', '.join(r['name'] for r in missed)) if missed else
            (None if measured else 'no before/after p95 (baseline not taken or indexes already in place)')))
    health = _dict(_dict(watch).get('health'))
    if _dict(watch).get('enabled') and health:
        criteria.append(_criterion(
            'No application errors', 'error rate unchanged',
            'fail' if health.get('error_rate_changed') else 'pass',
            'rollbacks %s/s before, %s/s during the watch; deadlocks %s' % (
                health.get('rollbacks_per_s_before'), health.get('rollbacks_per_s'), health.get('deadlocks')),
            'pg_stat_database over the watch (%s s); application logs stay the application\'s' % watch.get('watched_s')))
    else:
        criteria.append(_criterion('No application errors', 'error rate unchanged', NOT_MEASURED, None,
                                   'the post-deploy watch did not run (pgindex_watch_duration: 0)'
                                   if not _dict(watch).get('enabled') else 'the watch took no sample'))
    if state != 'absent':
        planned = [r for r in rows if r.get('plan') in ('passed', 'failed', 'warning')]
        bad = [r for r in planned if r.get('plan') != 'passed']
        criteria.append(_criterion('Index usage confirmed', 'EXPLAIN shows index scans',
                                   NOT_MEASURED if not planned else ('pass' if not bad else 'fail'),
                                   '%d/%d plans use their index' % (len(planned) - len(bad), len(planned)) if planned else None,
                                   ('not used: %s' % ', '.join(r['name'] for r in bad)) if bad else
                                   (None if planned else 'no plan check ran')))
    return criteria


def executed_sql(entries, rollback, check_mode=False):
    """Every statement the run sent (in check mode: would send), in order, per index; the guard's rollback after
    the deploy's."""
    executed = []
    rolled_back = build_entries(_dict(rollback).get('build_result'), _dict(rollback).get('results'))
    for phase, source in (('planned (check mode)' if check_mode else 'deploy', entries), ('rollback', rolled_back)):
        for entry in source:
            for query in _list(entry.get('queries')):
                executed.append(dict(phase=phase, index=entry.get('name'), sql=query))
    return executed


def preflight_record(preflight, results):
    checks = [c for c in _list(results) if isinstance(c, dict)]
    if not checks:
        checks = [c for c in _list(_dict(preflight).get('checks')) if isinstance(c, dict)]
    disk = next((c for c in checks if c.get('name') == 'disk'), None)
    disk_data = _dict((disk or {}).get('data'))
    return dict(
        ran=bool(checks),
        status=('fail' if any(c.get('status') == 'fail' for c in checks) else
                'warn' if any(c.get('status') == 'warn' for c in checks) else 'pass') if checks else NOT_MEASURED,
        checks=[dict(name=c.get('name'), status=c.get('status'), message=c.get('message')) for c in checks],
        disk=dict(measured_on=disk_data.get('host'), filesystems=_list(disk_data.get('filesystems')),
                  status=disk.get('status'), message=disk.get('message')) if disk else None,
        space=_dict(preflight).get('space'),
        skipped=_list(_dict(preflight).get('skipped_checks')))


def table_lines(report):
    """The table the role prints: one line per index, then the success criteria and the report's path."""
    fmt = '%-34s %-8s %8s %8s %-7s %-9s %-26s %12s %12s  %s'
    lines = ['%s of change set %s on %s (database %s): %s' % (
        'verification' if report['verified'] else report['entry_point'], report['changeset'], report['host'], report['database'] or '?',
        'PASSED' if report['ok'] else 'FAILED')]
    lines.append(fmt % ('index', 'action', 'build s', 'est. s', 'valid', 'size', 'plan', 'p95 before', 'p95 after',
                        'p95 reduction (target >= %s %%)' % report['target_reduction_pct']))
    for r in report['indexes']:
        plan = r.get('plan') or '-'
        if plan in ('passed', 'failed', 'warning') and r.get('scan'):
            plan += ': ' + r['scan'].split(' using ')[0]
        if r['build_failed']:
            valid = 'FAILED'
        elif r.get('state') == 'absent' and r.get('exists') is False:
            valid = 'gone'
        else:
            valid = '-' if r.get('valid') is None else ('yes' if r['valid'] else 'INVALID')
        if r.get('reduction_pct') is not None:
            reduction = '%s%s %%%s' % ('>= ' if r.get('at_least') else '', r['reduction_pct'],
                                       ' ok' if r.get('meets_target') else ' MISSED')
        else:
            reduction = (r.get('latency_note') or (r['build_error'] if r['build_failed'] else None) or '-')[:60]
        lines.append(fmt % (
            r['name'], r.get('action') or '-',
            '-' if r.get('action') in (None, 'none') or r.get('build_duration_s') is None else r['build_duration_s'],
            '-' if r.get('estimate_s') is None else r['estimate_s'], valid, r.get('size') or '-', plan[:26],
            '-' if r.get('p95_before_ms') is None else '%.3f ms' % r['p95_before_ms'],
            '-' if r.get('p95_after_ms') is None else '%.3f ms' % r['p95_after_ms'], reduction))
    sampling = report['sampling']
    if sampling.get('verify') or sampling.get('baseline'):
        base, after = sampling.get('baseline'), sampling.get('verify')
        lines.append('latency sampling: baseline %s, after %s' % (
            ('%s executions in %s s' % (base.get('executions'), base.get('seconds'))) if base else 'not taken',
            ('%s executions in %s s' % (after.get('executions'), after.get('seconds'))) if after else 'not taken'))
    watch = report['watch']
    if watch.get('enabled'):
        lines.append('watch: %s' % (watch.get('summary') or watch.get('verdict')))
    if report['build'].get('short_path') and not report['verified']:
        lines.append('nothing to do: preflight found every index present, valid and identical, so nothing was built '
                     'and the verification was skipped (playbooks/verify_indexes.yml verifies on demand)')
    lines.append('success criteria: ' + '; '.join(
        '%s %s' % (c['criterion'], c['status'].upper() if c['status'] != NOT_MEASURED else 'not measured')
        for c in report['success_criteria']))
    if report.get('report_file'):
        lines.append('report: %s.md (and .json); latest: %s' % (report['report_file'], report.get('latest_file')))
    lines.extend(report['problems'])
    return [line.rstrip() for line in lines]


def pgindex_report(inputs):
    """The whole report and the printed table: see DOCUMENTATION."""
    inputs = _clean(_dict(inputs))
    verification = _dict(inputs.get('verification'))
    build_result = _dict(inputs.get('build_result'))
    watch = _dict(inputs.get('watch'))
    baseline = _dict(inputs.get('baseline'))
    changeset = _list(inputs.get('indexes'))
    entries = build_entries(build_result, inputs.get('results'))
    rows = index_rows(changeset, verification, entries, estimates_by_name(build_result))
    state = verification.get('state') or inputs.get('state') or ('absent' if inputs.get('entry_point') == 'rollback' else 'present')
    target = inputs.get('target_reduction', 50)
    awx = _dict(inputs.get('awx'))
    problems = list(_list(verification.get('problems')))
    for row in rows:
        if row['build_failed']:
            problems.append('index %s: build failed: %s' % (row['name'], row['build_error']))
    if build_result.get('failed') and build_result.get('msg') and not any(r['build_failed'] for r in rows):
        problems.append('build: %s' % build_result['msg'])
    if watch.get('regressed'):
        problems.extend(_list(watch.get('tripped_messages')))
    # Why the run stopped before or outside the build (a preflight check, the job): the first problem.
    failure = inputs.get('failure') or ''
    if failure and failure not in problems:
        problems.insert(0, failure)
    warnings = list(_list(verification.get('warnings')))
    amcheck = _dict(verification.get('amcheck'))
    if amcheck.get('message') and amcheck['message'] not in warnings:
        warnings.append(amcheck['message'])
    verified = bool(verification) and verification.get('ok') is not None
    build_failed = bool(build_result.get('failed')) or any(r['build_failed'] for r in rows)
    ok = all(((verified or bool(entries)), not build_failed, verification.get('ok') is not False,
              not watch.get('regressed'), not problems))
    rollback = _dict(inputs.get('rollback'))
    report = dict(
        changeset=inputs.get('changeset') or 'unnamed', host=inputs.get('host'),
        entry_point=inputs.get('entry_point') or 'deploy',
        check_mode=bool(inputs.get('check_mode')),
        database=_first(verification.get('database'), _dict(inputs.get('snapshot')).get('database'),
                        _dict(inputs.get('preflight')).get('database'),
                        _dict(_dict(inputs.get('preflight')).get('server')).get('database'), inputs.get('database')),
        server_version=verification.get('server_version') or _dict(inputs.get('snapshot')).get('server_version'),
        started_at=inputs.get('started_at') or inputs.get('finished_at'), finished_at=inputs.get('finished_at'),
        generated_at=inputs.get('finished_at'),
        operator=operator(awx, inputs.get('local_user')), awx=awx_record(awx),
        module_host=inputs.get('module_host'),
        ok=ok, verified=verified, state=state, target_reduction_pct=target,
        indexes=rows, problems=problems, warnings=warnings,
        executed_sql=executed_sql(entries, rollback, bool(inputs.get('check_mode'))),
        leftovers=_list(build_result.get('leftovers')) or [lo for r in rows for lo in r['leftovers']],
        preflight=preflight_record(inputs.get('preflight'), inputs.get('preflight_results')),
        cause=failure or (build_result.get('msg') if build_failed else None) or (problems[0] if problems else None),
        build=dict(started=bool(entries) or bool(build_result), failed=build_failed, msg=build_result.get('msg'),
                   duration_s=build_result.get('duration_s'), parallelism=build_result.get('parallelism'),
                   short_path=bool(build_result.get('short_path'))),
        sampling=dict(baseline=baseline.get('sampling'), verify=verification.get('sampling')),
        amcheck=amcheck or None, analyzed=_list(verification.get('analyzed')), review=verification.get('review'),
        watch=dict(watch, enabled=bool(watch.get('enabled'))),
        rollback=dict(rolled_back=bool(rollback), reason=rollback.get('reason'),
                      indexes=_list(rollback.get('indexes')),
                      verified_absent=_dict(rollback.get('verification')).get('ok')) if rollback else None,
        details=dict(baseline=baseline.get('indexes'), verify=_list(verification.get('indexes'))),
        report_file=inputs.get('report_file'), latest_file=inputs.get('latest_file'),
    )
    report['build'].update(indexes=entries, leftovers=report['leftovers'])
    report['success_criteria'] = success_criteria(rows, entries, build_result, verification, watch, target, state,
                                                  _list(rollback.get('indexes')))
    if report['check_mode']:
        for criterion in report['success_criteria']:
            if criterion['criterion'] != 'No deployment errors' or criterion['status'] == 'pass':
                criterion.update(status=NOT_MEASURED, detail='check mode (dry run): nothing was changed')
    report['sign_off'] = dict(
        prepared_by=inputs.get('prepared_by') or 'the change set %s' % report['changeset'],
        reviewed_and_approved_by=(report['awx'] or {}).get('approval'),
        executed_by=report['operator']['name'], executed_at=report['started_at'])
    return dict(report=report, lines=table_lines(report))


class FilterModule(object):
    def filters(self):
        return {'pgindex_report': pgindex_report}

# -*- coding: utf-8 -*-
# Copyright: ChefCloud Platform Engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The disk judge of the preflight: ``df -P -B1`` output from the database host (the role runs it there)
judged against the space estimate of pg_preflight (check_space). Used by the preflight_disk_check filter."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.chefcloud.pgindex.plugins.module_utils.preflight_result import FAIL, PASS, WARN, check, human_bytes


# One command on the database host measures everything the role needs of it (preflight.yml, the script is the
# role's pgindex_host_measure_script): its CPU count on the first line, then ``df -P -B1`` of every path, each
# block between markers. The paths are the script's positional parameters (never pasted into it).
DF_MARK = '@@pgindex-df '
RC_MARK = '@@pgindex-rc '


def split_host_measure(stdout):
    """(cpus, reports) from the output of the role's pgindex_host_measure_script: cpus 0 when unknown; one
    report per path (path, rc, stdout, stderr) in the shape check_disk reads."""
    cpus, reports, current = 0, [], None
    for line in (stdout or '').splitlines():
        if current is None and not reports and not cpus and line.strip().isdigit():
            cpus = int(line.strip())
        elif line.startswith(DF_MARK):
            current = dict(path=line[len(DF_MARK):], rc=None, lines=[])
        elif current is not None and line.startswith(RC_MARK):
            try:
                rc = int(line[len(RC_MARK):])
            except ValueError:
                rc = 1
            text = '\n'.join(current['lines']) + '\n'
            reports.append(dict(path=current['path'], rc=rc, stdout=text, stderr='' if rc == 0 else text))
            current = None
        elif current is not None:
            current['lines'].append(line)
    return cpus, reports


def parse_df(stdout):
    """The data line of ``df -P -B1 <path>``: filesystem, size_bytes, used_bytes, available_bytes, mount."""
    lines = [line for line in (stdout or '').splitlines() if line.strip()]
    if len(lines) < 2 or not lines[0].startswith('Filesystem'):
        raise ValueError('not the output of df -P: %r' % (stdout,))
    fields = lines[-1].split(None, 5)
    if len(fields) != 6:
        raise ValueError('unexpected df line: %r' % lines[-1])
    return dict(filesystem=fields[0], size_bytes=int(fields[1]), used_bytes=int(fields[2]),
                available_bytes=int(fields[3]), mount=fields[5])


def check_disk(space, reports, host='the database host'):
    """Judge ``df -P -B1`` of each location against the space estimate.

    ``reports``: one dict per location path run on the database host: path, rc, stdout, stderr.
    A filesystem passes when, after the build, free space stays at least ``min_free_percent`` of its
    size and at least ``free_margin_percent`` of what the build needs.
    """
    min_free = float(space.get('min_free_percent', 10))
    margin = float(space.get('free_margin_percent', 20))
    if not space.get('estimated'):
        return check('disk', WARN, 'free space not measured: pg_preflight made no space estimate (its space check '
                     'did not run)', host=host, filesystems=[])
    by_path = dict((report.get('path'), report) for report in reports or [])
    filesystems, problems = [], []
    for loc in space.get('locations') or []:
        if loc.get('path') is None:
            problems.append('free space for %s cannot be checked: %s' % (', '.join(loc['what']), loc['unknown_reason']))
            continue
        report = by_path.get(loc['path'])
        if report is None:
            problems.append('df was not run on %s for %s' % (host, loc['path']))
            continue
        if report.get('rc') != 0:
            reason = ' '.join((report.get('stderr') or report.get('stdout') or 'no output').split())
            hint = ('; the user running the play there cannot reach it: run the play with become, or set '
                    'pgindex_data_directory / pgindex_tablespace_paths' if 'ermission denied' in reason else '')
            problems.append('df -P -B1 %s failed on %s: %s%s' % (loc['path'], host, reason, hint))
            continue
        try:
            df = parse_df(report.get('stdout'))
        except ValueError as exc:
            problems.append('df -P -B1 %s on %s: %s' % (loc['path'], host, exc))
            continue
        found = [fs for fs in filesystems if fs['mount'] == df['mount'] and fs['filesystem'] == df['filesystem']]
        if found:
            fs = found[0]
        else:
            fs = dict(df, paths=[], what=[], required_bytes=0)
            filesystems.append(fs)
        fs['paths'].append(loc['path'])
        fs['what'].extend(loc['what'])
        fs['required_bytes'] += loc['required_bytes']
    lines = []
    for fs in filesystems:
        after = fs['available_bytes'] - fs['required_bytes']
        after_percent = after * 100.0 / fs['size_bytes'] if fs['size_bytes'] else 0.0
        with_margin = int(fs['required_bytes'] * (1 + margin / 100.0))
        reasons = []
        if after_percent < min_free:
            reasons.append('%.1f%% would be free after the build, below the minimum of %g%% (min_free_percent)'
                           % (after_percent, min_free))
        if fs['available_bytes'] < with_margin:
            reasons.append('%s available is less than the estimate plus a %g%% margin, %s (free_margin_percent)'
                           % (human_bytes(fs['available_bytes']), margin, human_bytes(with_margin)))
        fs.update(free_after_bytes=after, free_after_percent=round(after_percent, 2), required_with_margin_bytes=with_margin,
                  ok=not reasons, reasons=reasons)
        text = ('%s (%s on %s, %s): %s of %s available; the build needs ~%s (%s), leaving %s (%.1f%%)'
                % (', '.join(fs['paths']), fs['filesystem'], fs['mount'], host, human_bytes(fs['available_bytes']),
                   human_bytes(fs['size_bytes']), human_bytes(fs['required_bytes']), ', '.join(fs['what']),
                   human_bytes(after), after_percent))
        if reasons:
            problems.append('not enough free space on %s: %s. Free space there, or put the indexes in another '
                            'tablespace (tablespace key of the index)' % (text, '; '.join(reasons)))
        else:
            lines.append(text)
    data = dict(host=host, filesystems=filesystems, min_free_percent=min_free, free_margin_percent=margin)
    if problems:
        return check('disk', FAIL, '; '.join(problems), **data)
    if not filesystems:
        return check('disk', PASS, 'nothing to measure: no index to build', **data)
    return check('disk', PASS, '; '.join(lines) + ' (at least %g%% stays free, and %g%% over the estimate)'
                 % (min_free, margin), **data)

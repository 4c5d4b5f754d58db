# -*- coding: utf-8 -*-
# Copyright: ChefCloud Platform Engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""observe -> plan -> execute for one index: the whole of pg_concurrent_index, minus Ansible.

``ensure_index`` takes a connection factory, so it runs the same from a module or from a test.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.chefcloud.pgindex.plugins.module_utils import catalog, plan as planner
from ansible_collections.chefcloud.pgindex.plugins.module_utils.errors import SpecError
from ansible_collections.chefcloud.pgindex.plugins.module_utils.execute import (
    PlanExecutor, apply_session_settings, timed)
from ansible_collections.chefcloud.pgindex.plugins.module_utils.index_spec import normalized_definition

MIN_SERVER_VERSION = 130000
# PostgreSQL 14.0 to 14.3 could build concurrent indexes that miss rows (fixed in 14.4, whose
# release notes ask to rebuild such indexes).
BROKEN_CONCURRENT_BUILDS = (140000, 140004)


class Observation(object):
    """What the catalog says about one desired index."""

    def __init__(self, table, index, builds, desired_definition):
        self.table = table
        self.index = index
        self.builds = builds
        self.desired_definition = desired_definition


def _version_text(version):
    return '%d.%d' % (version // 10000, version % 10000)


def check_server(conn):
    """Refuse servers this collection does not support, and standbys."""
    version = catalog.server_version_num(conn)
    if version < MIN_SERVER_VERSION:
        raise SpecError('PostgreSQL %s is not supported: chefcloud.pgindex needs PostgreSQL 13 or newer'
                        % _version_text(version))
    if catalog.in_recovery(conn):
        raise SpecError('the server is a standby (in recovery): indexes cannot be built or dropped there. '
                        'Run against the primary; the change replicates to the standbys.')


def check_concurrent_builds_are_safe(conn, plan):
    """Refuse to build concurrently on the releases whose concurrent builds could miss rows."""
    version = catalog.server_version_num(conn)
    low, high = BROKEN_CONCURRENT_BUILDS
    if low <= version < high and any(step.kind == 'create' for step in plan.steps):
        raise SpecError(
            'refusing to build concurrently on PostgreSQL %s: CREATE INDEX CONCURRENTLY and REINDEX CONCURRENTLY '
            'on 14.0 to 14.3 could miss rows, corrupting the index (fixed in 14.4). Upgrade to the latest 14.x '
            'minor release first, then rebuild any index built concurrently on this server.' % _version_text(version))


def observe(conn, spec, state, lock_timeout):
    """Read the table, the index and any build in progress; normalize the desired definition."""
    table = None
    if spec.table is not None:
        table = catalog.get_table(conn, spec.schema, spec.table)
        if table is None and state == 'present':
            raise SpecError('table %s does not exist (index %s cannot be built on it)'
                            % (spec.qualified_table, spec.qualified_name))
    index = catalog.get_index(conn, spec.schema, spec.name)
    builds = catalog.builds_in_progress(conn, index.oid) if index is not None and not index.valid else []
    desired = normalized_definition(conn, spec, lock_timeout) if state == 'present' else None
    return Observation(table, index, builds, desired)


def make_plan(spec, state, seen):
    if state == 'present':
        return planner.plan_present(spec, seen.index, seen.desired_definition, seen.builds)
    return planner.plan_absent(spec, seen.index, seen.builds)


def _diff(spec, plan):
    def text(definition):
        return definition + '\n' if definition else ''
    return dict(before=text(plan.before), after=text(plan.after),
                before_header='%s (%s)' % (spec.qualified_name, 'absent' if plan.before is None else 'existing'),
                after_header='%s (%s)' % (spec.qualified_name, 'absent' if plan.after is None else 'planned'))


def ensure_index(connect, spec, state, settings, check_mode=False):
    """Bring one index to ``state``; return the module result.

    ``settings`` are session settings for the build (lock_timeout, statement_timeout...).
    In check mode nothing but reads and a rolled-back normalization probe is sent.
    """
    if state == 'present':
        spec.require_definition()
    conn = connect()
    check_server(conn)
    apply_session_settings(conn, settings)
    seen = observe(conn, spec, state, settings.get('lock_timeout', '5s'))
    plan = make_plan(spec, state, seen)
    check_concurrent_builds_are_safe(conn, plan)
    result = dict(
        changed=plan.changes, action=plan.action, name=spec.name, schema=spec.schema,
        table=spec.table or (seen.index.table if seen.index else None),
        queries=[step.statement.as_string(conn) for step in plan.steps],
        diff=_diff(spec, plan), warnings=plan.warnings, duration_s=0.0,
    )
    if plan.changes and not check_mode:
        executor = PlanExecutor(conn, connect, spec)
        result['queries'], result['duration_s'] = timed(executor.run, plan)
        conn = executor.conn
    if check_mode and plan.changes:
        # Nothing was done: report the planned definition, not the catalog.
        result.update(valid=None, definition=plan.after, size_bytes=None)
        return result
    after = catalog.get_index(conn, spec.schema, spec.name)
    result.update(valid=after.valid if after else None,
                  definition=after.definition if after else None,
                  size_bytes=after.size_bytes if after else None)
    return result

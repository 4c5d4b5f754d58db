# -*- coding: utf-8 -*-
# Copyright: ChefCloud Platform Engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""observe -> plan -> execute for one index: the whole of pg_concurrent_index, minus Ansible.

``ensure_index`` takes a connection factory, so it runs the same from a module or from a test.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.chefcloud.pgindex.plugins.module_utils import catalog, plan as planner
from ansible_collections.chefcloud.pgindex.plugins.module_utils.changeset import POLICY_DEFAULTS
from ansible_collections.chefcloud.pgindex.plugins.module_utils.errors import PgIndexError, SpecError
from ansible_collections.chefcloud.pgindex.plugins.module_utils.execute import (
    PlanExecutor, RetryPolicy, apply_session_settings, duration_seconds, timed)
from ansible_collections.chefcloud.pgindex.plugins.module_utils.index_spec import (
    normalized_definition, partition_index_name, replacement_name)

MIN_SERVER_VERSION = 130000
# PostgreSQL 14.0 to 14.3 could build concurrent indexes that miss rows (fixed in 14.4, whose
# release notes ask to rebuild such indexes).
BROKEN_CONCURRENT_BUILDS = (140000, 140004)
NULLS_NOT_DISTINCT_SINCE = 150000
TRANSACTION_TIMEOUT_SINCE = 170000

# The build policies' defaults are those of the one spec of the index options (changeset.py).
DEFAULT_OPTIONS = POLICY_DEFAULTS


class Observation(object):
    """What the catalog says about one desired index."""

    def __init__(self, table, index, builds, desired_definition, replacement=None, replacement_builds=(),
                 quoted_name=None, partitions=()):
        self.table = table
        self.index = index
        self.builds = builds
        self.desired_definition = desired_definition
        self.replacement = replacement                  # the on_drift=replace index left by an earlier run
        self.replacement_builds = replacement_builds
        self.quoted_name = quoted_name
        self.partitions = list(partitions)              # plan.PartitionState, for a partitioned table


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


def check_spec_supported(conn, spec):
    """Refuse definitions the server cannot build, before anything runs."""
    version = catalog.server_version_num(conn)
    if spec.nulls_not_distinct and version < NULLS_NOT_DISTINCT_SINCE:
        raise SpecError('index %s: nulls_not_distinct needs PostgreSQL 15 or newer; this server is %s'
                        % (spec.qualified_name, _version_text(version)))


def check_concurrent_builds_are_safe(conn, plan):
    """Refuse to build concurrently on the releases whose concurrent builds could miss rows."""
    version = catalog.server_version_num(conn)
    low, high = BROKEN_CONCURRENT_BUILDS
    if low <= version < high and any(step.cleanup is not None for step in plan.steps):
        raise SpecError(
            'refusing to build concurrently on PostgreSQL %s: CREATE INDEX CONCURRENTLY and REINDEX CONCURRENTLY '
            'on 14.0 to 14.3 could miss rows, corrupting the index (fixed in 14.4). Upgrade to the latest 14.x '
            'minor release first, then rebuild any index built concurrently on this server.' % _version_text(version))


def _builds(conn, index):
    return catalog.builds_in_progress(conn, index.oid) if index is not None and not index.valid else []


def observe_partitions(conn, spec, table, index, lock_timeout):
    """PartitionState for every partition below a partitioned table."""
    tree = catalog.partitions(conn, table.oid)
    attached = catalog.attached_indexes(conn, index.oid) if index is not None else {}
    states = []
    for info in tree:
        name = partition_index_name(spec.name, info['name'])
        child = spec.for_partition(info['schema'], info['name'], name)
        existing = catalog.get_index(conn, info['schema'], name)
        desired = normalized_definition(conn, child, lock_timeout)
        states.append(planner.PartitionState(info, child, name, existing, attached.get(info['oid']), desired,
                                             _builds(conn, existing)))
    return states


def observe(conn, spec, state, lock_timeout='5s'):
    """Read the table, the index (and its replacement or partitions) and any build in progress;
    normalize the desired definition."""
    table = None
    if spec.table is not None:
        table = catalog.get_table(conn, spec.schema, spec.table)
        if table is None and state == 'present':
            raise SpecError('table %s does not exist (index %s cannot be built on it)'
                            % (spec.qualified_table, spec.qualified_name))
    index = catalog.get_index(conn, spec.schema, spec.name)
    seen = Observation(table, index, _builds(conn, index), None)
    if state != 'present':
        return seen
    seen.desired_definition = normalized_definition(conn, spec, lock_timeout)
    seen.quoted_name = catalog.quote_ident(conn, spec.name)
    if table.relkind == 'p':
        seen.partitions = observe_partitions(conn, spec, table, index, lock_timeout)
    else:
        seen.replacement = catalog.get_index(conn, spec.schema, replacement_name(spec.name))
        seen.replacement_builds = _builds(conn, seen.replacement)
    return seen


def make_plan(spec, state, seen, options):
    if state != 'present':
        return planner.plan_absent(spec, seen.index, seen.builds)
    if seen.table.relkind == 'p':
        by_oid = dict((p.info['oid'], p) for p in seen.partitions)

        def parent_index_of(part):
            parent = by_oid.get(part.info['parent_oid'])
            return (spec.schema, spec.name) if parent is None else (parent.info['schema'], parent.index_name)
        return planner.plan_partitioned(spec, seen.index, seen.desired_definition, seen.partitions, parent_index_of,
                                        on_drift=options['on_drift'], on_invalid=options['on_invalid'])
    return planner.plan_present(spec, seen.index, seen.desired_definition, seen.builds,
                                on_drift=options['on_drift'], on_invalid=options['on_invalid'],
                                replacement=seen.replacement, replacement_builds=seen.replacement_builds,
                                quoted_name=seen.quoted_name)


def wait_for_other_builds(conn, spec, state, seen, options, lock_timeout, sleep=time.sleep):
    """With on_build_in_progress=wait, wait (up to build_wait_timeout seconds) until no other session
    builds the index, then observe again."""
    deadline = time.monotonic() + options['build_wait_timeout']
    while seen.builds and options['on_build_in_progress'] == 'wait':
        if time.monotonic() >= deadline:
            raise PgIndexError('index %s is still being built by another session after %ss (pid %s); giving up'
                               % (spec.qualified_name, options['build_wait_timeout'],
                                  ', '.join(str(b['pid']) for b in seen.builds)), builders=seen.builds)
        sleep(1)
        seen = observe(conn, spec, state, lock_timeout)
    return seen


def _diff(spec, plan):
    def text(definition):
        return definition + '\n' if definition else ''
    return dict(before=text(plan.before), after=text(plan.after),
                before_header='%s (%s)' % (spec.qualified_name, 'absent' if plan.before is None else 'existing'),
                after_header='%s (%s)' % (spec.qualified_name, 'absent' if plan.after is None else 'planned'))


def ensure_index(connect, spec, state, settings, check_mode=False, options=None):
    """Bring one index to ``state``; return the module result.

    ``settings`` are session settings for the build (statement_timeout, maintenance_work_mem...);
    ``options`` the policies (DEFAULT_OPTIONS). In check mode nothing but reads and a rolled-back
    normalization probe is sent.
    """
    opts = dict(DEFAULT_OPTIONS)
    opts.update(dict((k, v) for k, v in (options or {}).items() if v is not None))
    if state == 'present':
        spec.require_definition()
    conn = connect()
    check_server(conn)
    check_spec_supported(conn, spec)
    # Lock waits are bounded by the watchdog (execute.py), which keeps the table-lock wait and the
    # wait for older transactions apart; the server-side lock_timeout stays off for the build.
    policy = RetryPolicy(lock_timeout=duration_seconds(conn, 'lock_timeout', opts['lock_timeout']),
                         snapshot_wait_timeout=duration_seconds(conn, 'snapshot_wait_timeout',
                                                                opts['snapshot_wait_timeout']),
                         retries=opts['retries'], retry_delay=opts['retry_delay'])
    session_settings = dict(settings, lock_timeout='0', standard_conforming_strings='on')
    if catalog.server_version_num(conn) >= TRANSACTION_TIMEOUT_SINCE:
        # A role or database transaction_timeout would cancel a long build like statement_timeout would.
        session_settings['transaction_timeout'] = '0'
    apply_session_settings(conn, session_settings)

    def reconnect():
        """A new session with the same settings (after the build's own session was terminated)."""
        fresh = connect()
        apply_session_settings(fresh, session_settings)
        return fresh
    probe_lock_timeout = '%dms' % max(1, int(policy.lock_timeout * 1000)) if policy.lock_timeout else '0'
    seen = observe(conn, spec, state, probe_lock_timeout)
    seen = wait_for_other_builds(conn, spec, state, seen, opts, probe_lock_timeout)
    plan = make_plan(spec, state, seen, opts)
    check_concurrent_builds_are_safe(conn, plan)
    result = dict(
        changed=plan.changes, action=plan.action, name=spec.name, schema=spec.schema,
        table=spec.table or (seen.index.table if seen.index else None),
        queries=[step.statement.as_string(conn) for step in plan.steps],
        diff=_diff(spec, plan), warnings=plan.warnings, duration_s=0.0, attempts=0, blockers=[], cleaned_up=[],
        partitions=plan.partitions,
    )
    if plan.changes and not check_mode:
        executor = PlanExecutor(conn, reconnect, spec, policy)
        try:
            result['queries'], result['duration_s'] = timed(executor.run, plan)
        finally:
            executor.close()
        conn = executor.conn
        result.update(attempts=executor.attempts, blockers=executor.blockers, cleaned_up=executor.cleaned_up)
    if check_mode and plan.changes:
        # Nothing was done: report the planned definition, not the catalog.
        result.update(valid=None, definition=plan.after, size_bytes=None)
        return result
    after = catalog.get_index(conn, spec.schema, spec.name)
    result.update(valid=after.valid if after else None,
                  definition=after.definition if after else None,
                  size_bytes=after.size_bytes if after else None)
    return result

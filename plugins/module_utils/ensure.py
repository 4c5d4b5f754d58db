# -*- coding: utf-8 -*-
# Copyright: ChefCloud Platform Engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""observe -> plan -> execute for one index: the whole of pg_concurrent_index, minus Ansible.

``ensure_index`` takes a connection factory, so it runs the same from a module or from a test.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.chefcloud.pgindex.plugins.module_utils import catalog, plan as planner, results
from ansible_collections.chefcloud.pgindex.plugins.module_utils import session as session_utils
from ansible_collections.chefcloud.pgindex.plugins.module_utils.connection import psycopg2
from ansible_collections.chefcloud.pgindex.plugins.module_utils.errors import IndexFailed, PgIndexError, SpecError
from ansible_collections.chefcloud.pgindex.plugins.module_utils.changeset import POLICY_DEFAULTS
from ansible_collections.chefcloud.pgindex.plugins.module_utils.execute import (
    PlanExecutor, RetryPolicy, duration_seconds)
from ansible_collections.chefcloud.pgindex.plugins.module_utils.index_spec import (
    normalized_definition, partition_index_name, replacement_name)

# The refusals live in session.py; these names stay for the modules that read them.
MIN_SERVER_VERSION = session_utils.MIN_SERVER_VERSION
BROKEN_CONCURRENT_BUILDS = session_utils.BROKEN_CONCURRENT_BUILDS
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


def check_spec_supported(conn, spec):
    """Refuse definitions the server cannot build, before anything runs."""
    version = catalog.server_version_num(conn)
    if spec.nulls_not_distinct and version < NULLS_NOT_DISTINCT_SINCE:
        raise SpecError('index %s: nulls_not_distinct needs PostgreSQL 15 or newer; this server is %s'
                        % (spec.qualified_name, session_utils.version_text(version)))


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
        if table is None:
            raise SpecError('table %s does not exist (index %s is to be dropped from it): check the table of this '
                            'entry in the change set; a misspelled table is not proof that the index is gone'
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
    """Bring one index to ``state``; return its result (results.RESULT_KEYS and more).

    ``connect`` is a zero-argument connection factory; everything runs in one Session, closed at the
    end whatever happens. ``settings`` are session settings for the build (statement_timeout,
    maintenance_work_mem...); ``options`` the policies (DEFAULT_OPTIONS). In check mode nothing but
    reads and a rolled-back normalization probe is sent.

    Any failure raises a PgIndexError whose ``details`` are a complete failed result: the SQL executed
    so far, the leftovers cleaned up, and every INVALID index left behind (re-observed from a new
    session) with the statement that drops it.
    """
    opts = dict(DEFAULT_OPTIONS)
    opts.update(dict((k, v) for k, v in (options or {}).items() if v is not None))
    result = results.index_result(spec.name, spec.schema, spec.table)
    work = _IndexWork(connect, spec, state, settings, check_mode, opts, result)
    start = time.monotonic()
    try:
        return work.run()
    except Exception as exc:  # every failure becomes one complete failed result
        raise work.failure(exc, round(time.monotonic() - start, 3))


class _IndexWork(object):
    """One index's observe -> plan -> execute, remembering enough to report a failure truthfully."""

    def __init__(self, connect, spec, state, settings, check_mode, opts, result):
        self.connect = connect
        self.spec = spec
        self.state = state
        self.settings = settings
        self.check_mode = check_mode
        self.opts = opts
        self.result = result
        self.plan = None
        self.executor = None

    def run(self):
        spec, state, opts, result = self.spec, self.state, self.opts, self.result
        if state == 'present':
            spec.require_definition()
        with session_utils.Session(connect=self.connect) as session:
            conn = session.conn
            session_settings = dict(self.settings, lock_timeout='0', standard_conforming_strings='on')
            if session.version >= TRANSACTION_TIMEOUT_SINCE:
                # A role or database transaction_timeout would cancel a long build like statement_timeout would.
                session_settings['transaction_timeout'] = '0'
            session.configure(**session_settings)
            session.refuse_unsupported_server()
            check_spec_supported(conn, spec)
            # Lock waits are bounded by the watchdog (execute.py), which keeps the table-lock wait and the
            # wait for older transactions apart; the server-side lock_timeout stays off for the build.
            policy = RetryPolicy(lock_timeout=duration_seconds(conn, 'lock_timeout', opts['lock_timeout']),
                                 snapshot_wait_timeout=duration_seconds(conn, 'snapshot_wait_timeout',
                                                                        opts['snapshot_wait_timeout']),
                                 retries=opts['retries'], retry_delay=opts['retry_delay'])
            probe_lock_timeout = '%dms' % max(1, int(policy.lock_timeout * 1000)) if policy.lock_timeout else '0'
            seen = observe(conn, spec, state, probe_lock_timeout)
            seen = wait_for_other_builds(conn, spec, state, seen, opts, probe_lock_timeout)
            plan = self.plan = make_plan(spec, state, seen, opts)
            if any(step.cleanup is not None for step in plan.steps):
                session.refuse_broken_concurrent_builds()
            result.update(
                changed=plan.changes, action=plan.action,
                table=spec.table or (seen.index.table if seen.index else None),
                queries=[step.statement.as_string(conn) for step in plan.steps],
                diff=_diff(spec, plan), warnings=plan.warnings, partitions=plan.partitions,
                msg='%s: %s' % (spec.qualified_name, plan.action),
            )
            if plan.changes and not self.check_mode:
                executor = self.executor = PlanExecutor(session, spec, policy)
                start = time.monotonic()
                executor.run(plan)
                result.update(queries=list(executor.executed), duration_s=round(time.monotonic() - start, 3),
                              attempts=executor.attempts, blockers=list(executor.blockers),
                              cleaned_up=list(executor.cleaned_up))
                conn = session.conn
            if self.check_mode and plan.changes:
                # Nothing was done: report the planned definition, not the catalog.
                result.update(valid=None, definition=plan.after, size_bytes=None)
                return result
            after = catalog.get_index(conn, spec.schema, spec.name)
            result.update(valid=after.valid if after else None,
                          definition=after.definition if after else None,
                          size_bytes=after.size_bytes if after else None)
            return result

    def failure(self, exc, duration):
        """A PgIndexError whose details are the complete failed result for ``exc``."""
        result = dict(self.result)
        result.pop('diff', None)
        details = dict(exc.details) if isinstance(exc, PgIndexError) else {}
        details.pop('msg', None)
        result.update(details)
        executor = self.executor
        if executor is not None:
            # the SQL sent, in order: the statement that failed and the cleanup after it included
            result.update(queries=list(executor.sent), attempts=executor.attempts,
                          blockers=list(executor.blockers), cleaned_up=list(executor.cleaned_up))
            result['changed'] = bool(executor.executed)
        elif not isinstance(exc, PgIndexError) or 'queries' not in details:
            result['queries'] = []
        msg = exc.msg if isinstance(exc, PgIndexError) else (
            '%s: %s' % (self.spec.qualified_name, session_utils.one_line_error(exc)))
        leftovers = self.leftovers(exc)
        described = results.describe_leftovers(leftovers)
        if described:
            msg = '%s %s' % (msg.rstrip('.') + '.', described)
        # A failed index did not reach its planned action: keep the plan's as planned_action.
        result.update(planned_action=result.get('action'), action=None)
        result.update(failed=True, msg=msg, error=result.get('error') or session_utils.one_line_error(exc),
                      duration_s=duration, leftovers=leftovers)
        details = results.complete(result)
        details.pop('msg')
        # The same class for an expected failure (BuildError, DriftError...), IndexFailed for any other.
        failure = (exc.__class__ if isinstance(exc, PgIndexError) else IndexFailed)(msg, **details)
        failure.cause = exc
        return failure

    def candidates(self):
        """(schema, name) of every index a step of the plan builds concurrently (may leave INVALID)."""
        if self.plan is None or self.executor is None:
            return []
        return [step.index for step in self.plan.steps if step.cleanup is not None and step.index]

    def leftovers(self, exc):
        """The INVALID indexes this failure left behind, re-observed from a new session.

        After a lost connection (a server restart) the server is given a few seconds to come back;
        an index that cannot be re-checked is still named (``observed: False``).
        """
        candidates = self.candidates()
        if not candidates:
            return []
        lost = isinstance(exc, (psycopg2.OperationalError, psycopg2.InterfaceError)) or (
            isinstance(exc, PgIndexError) and 'terminated or its connection lost' in exc.msg)
        deadline = time.monotonic() + (LEFTOVER_RECONNECT_S if lost else 0)
        while True:
            try:
                with session_utils.Session(connect=self.connect) as fresh:
                    found = []
                    for schema, name in candidates:
                        index = catalog.get_index(fresh.conn, schema, name)
                        if index is not None and not index.valid and not catalog.builds_in_progress(fresh.conn, index.oid):
                            found.append(results.leftover(schema, name))
                    return found
            except Exception:  # the server is still down, or the check itself failed
                if time.monotonic() >= deadline:
                    cleaned = set(self.executor.cleaned_up)
                    return [results.leftover(schema, name, observed=False) for schema, name in candidates
                            if '%s.%s' % (schema, name) not in cleaned and self._was_started(schema, name)]
                time.sleep(0.5)

    def _was_started(self, schema, name):
        """Whether a build of schema.name was sent (a step not reached cannot have left anything)."""
        for step in self.plan.steps:
            if step.index == (schema, name):
                return step in self.executor.started
        return False


# Seconds a failure after a lost connection waits for the server to accept connections again, to
# re-observe the INVALID indexes it may have left.
LEFTOVER_RECONNECT_S = 20

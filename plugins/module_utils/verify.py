# -*- coding: utf-8 -*-
# Copyright: ChefCloud Platform Engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_index_verify minus Ansible: prove that a change set's indexes are valid, used by their
queries, and made those queries faster -- with numbers, where the runbook reads output by eye.

One function per concern:

  check_index / check_absent   exists on the expected table, valid/ready/live, definition as desired
                               (the comparison of pg_concurrent_index: ensure.observe + plan.drift), size
  run_amcheck                  bt_index_check, optionally heapallindexed, when amcheck is installed
  check_plan                   EXPLAIN (VERBOSE, FORMAT JSON) of the verification query; walk the plan tree
                               for an Index Scan, Index Only Scan or Bitmap Index Scan on the index
  sample_latency               N timed executions under statement_timeout and a time budget; p50/p95/p99
  compare_latency              p95 before vs after, against the target reduction (the runbook: >= 50 %)
  statement_stats              pg_stat_statements' mean time of the query (PostgreSQL 14+: query id)
  usage / review_indexes       pg_stat_user_indexes; unused, duplicate and redundant indexes
  verify_indexes               all of it for a change set: the module result

Verification queries are user SQL by nature.  Their parameters are bound by psycopg2, the bound
text is proven to be one statement without comments, a query, by PostgreSQL's own parser (sql_expression,
pglast), and it only ever runs inside a READ ONLY transaction that is
rolled back, under statement_timeout.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import math
import time

from ansible_collections.chefcloud.pgindex.plugins.module_utils import catalog, ensure, plan as planner
from ansible_collections.chefcloud.pgindex.plugins.module_utils.changeset import read_changeset, shared_option
from ansible_collections.chefcloud.pgindex.plugins.module_utils.connection import psycopg2, sql
from ansible_collections.chefcloud.pgindex.plugins.module_utils.errors import PgIndexError, SpecError, VerifyError
from ansible_collections.chefcloud.pgindex.plugins.module_utils.execute import (
    apply_session_settings, duration_seconds, one_line)
from ansible_collections.chefcloud.pgindex.plugins.module_utils.index_spec import definition_without_name
from ansible_collections.chefcloud.pgindex.plugins.module_utils.sql_expression import is_query

# Check statuses.
PASSED = 'passed'
FAILED = 'failed'
WARNING = 'warning'
SKIPPED = 'skipped'

INDEX_SCANS = ('Index Scan', 'Index Only Scan', 'Bitmap Index Scan')
QUERY_CANCELED = '57014'  # SQLSTATE of a statement cancelled by statement_timeout
PLAN_DETAILS = ('Index Cond', 'Recheck Cond', 'Filter', 'Join Filter', 'Hash Cond', 'Merge Cond', 'Sort Key')

# pg_index_verify's options, written once: the module takes this spec, verify_indexes its defaults and choices.
# schema, state and lock_timeout are the index options' own (changeset.shared_option).
VERIFY_ARGUMENT_SPEC = dict(
    indexes=dict(type='list', elements='dict', required=True),
    schema=shared_option('schema'),
    state=shared_option('state'),
    phase=dict(type='str', default='verify', choices=['verify', 'baseline']),
    baseline=dict(type='list', elements='dict'),
    plan_check=dict(type='str', default='fail', choices=['fail', 'warn', 'skip']),
    analyze=dict(type='bool', default=False),
    explain_analyze=dict(type='bool', default=False),
    samples=dict(type='int', default=30),
    warmup=dict(type='int', default=1),
    query_timeout=dict(type='str', default='5s'),
    query_budget=dict(type='float', default=30),
    latency_check=dict(type='str', default='warn', choices=['fail', 'warn', 'skip']),
    target_reduction=dict(type='float', default=50),
    amcheck=dict(type='str', default='off', choices=['off', 'on', 'heapallindexed']),
    create_amcheck=dict(type='bool', default=False),
    list_unused=dict(type='bool', default=False),
    lock_timeout=shared_option('lock_timeout'),
)
DEFAULT_OPTIONS = dict((name, spec.get('default')) for name, spec in VERIFY_ARGUMENT_SPEC.items() if name != 'indexes')


# --------------------------------------------------------------------------------------------------
# The verification query
# --------------------------------------------------------------------------------------------------

class VerifyQuery(object):
    """A change set entry's ``verify``: one read-only query with %(name)s placeholders, and their values."""

    def __init__(self, index_name, query, params=None, label=None):
        self.index_name = index_name
        if not isinstance(query, str) or not query.strip():
            raise SpecError('index %s: verify.query must be a non-empty SQL query, got %r' % (index_name, query))
        if params is not None and not isinstance(params, dict):
            raise SpecError('index %s: verify.params must be a dict of placeholder values, got %r' % (index_name, params))
        if label is not None and not isinstance(label, str):
            raise SpecError('index %s: verify.label must be a string, got %r' % (index_name, label))
        self.query = query
        self.params = dict(params or {})
        self.label = label or index_name

    @classmethod
    def from_entry(cls, entry):
        """The ``verify`` of a change set entry (changeset.ChangeSetEntry), or None when it has none."""
        if entry.verify is None:
            return None
        return cls(entry.name, entry.verify.query, entry.verify.params, entry.verify.label)

    def bind(self, conn):
        """The query with its parameters bound by psycopg2, proven to be a single query statement.

        The bound text is what is checked, so a placeholder written inside a quoted literal cannot
        smuggle a second statement in.  A literal % is written %% (psycopg2's rule).
        """
        kind = 'verification query of index %s' % self.index_name
        try:
            with conn.cursor() as cur:
                raw = cur.mogrify(self.query, self.params)
        except KeyError as exc:
            raise SpecError('%s uses the placeholder %%(%s)s, which verify.params does not set'
                            % (kind, exc.args[0]))
        except (TypeError, ValueError, IndexError) as exc:
            raise SpecError('%s: cannot bind verify.params (%s); placeholders are %%(name)s and a literal %% '
                            'is written %%%%' % (kind, exc))
        except psycopg2.Error as exc:
            raise SpecError('%s: cannot bind verify.params: %s' % (kind, one_line(exc)))
        encoding = psycopg2.extensions.encodings.get(conn.encoding, 'utf-8')
        return single_query(kind, raw.decode(encoding))


def single_query(kind, text):
    """``text`` (a trailing ; removed) if PostgreSQL's parser reads it as one statement without comments
    that is a query (SELECT, WITH, VALUES, TABLE), else SpecError."""
    if not isinstance(text, str) or not text.strip():
        raise SpecError('%s must be a non-empty SQL query' % kind)
    if '\x00' in text:
        raise SpecError('%s contains a NUL character' % kind)
    body = text.strip()
    if body.endswith(';'):
        body = body[:-1].rstrip()
    if not is_query(kind, body):
        raise SpecError('%s must be a query (SELECT, WITH, VALUES or TABLE): it runs read-only, got %r' % (kind, text))
    return body


@contextlib.contextmanager
def read_only(conn, timeout_ms=None):
    """A READ ONLY transaction that is always rolled back, with statement_timeout for its statements."""
    with conn.cursor() as cur:
        cur.execute('BEGIN READ ONLY')
        try:
            if timeout_ms is not None:
                cur.execute("SELECT set_config('statement_timeout', %s, true)", (str(int(timeout_ms)),))
            yield cur
        finally:
            if not conn.closed:
                cur.execute('ROLLBACK')


# --------------------------------------------------------------------------------------------------
# The index itself
# --------------------------------------------------------------------------------------------------

def check_index(conn, spec, lock_timeout):
    """Exists on the expected table, valid, ready, live, same definition as desired, size.

    The desired definition is normalized by the server and compared exactly as pg_concurrent_index
    does (ensure.observe, plan.drift).  Returns (facts, problems).
    """
    seen = ensure.observe(conn, spec, 'present', lock_timeout)
    index = seen.index
    facts = dict(exists=index is not None, desired_definition=seen.desired_definition, definition=None,
                 table_matches=None, valid=None, ready=None, live=None, definition_matches=None,
                 size_bytes=None, size=None, oid=None, partitioned=False)
    if index is None:
        return facts, ['index %s does not exist (expected on table %s)' % (spec.qualified_name, spec.qualified_table)]
    facts.update(oid=index.oid, definition=index.definition, valid=index.valid, ready=index.ready, live=index.live,
                 table_matches=index.table == spec.table, size_bytes=index.size_bytes,
                 size=catalog.size_pretty(conn, index.size_bytes), partitioned=bool(getattr(index, 'partitioned', False)))
    problems = []
    if not facts['table_matches']:
        problems.append('index %s is on table %s, not on %s'
                        % (spec.qualified_name, index.qualified_table, spec.qualified_table))
    if not index.valid:
        building = ' (another session is building it right now)' if seen.builds else ''
        problems.append('index %s is INVALID (indisvalid = false)%s: the planner never uses it. A failed or '
                        'interrupted concurrent build leaves such an index; pg_concurrent_index drops and rebuilds it'
                        % (spec.qualified_name, building))
    for flag in ('ready', 'live'):
        if not facts[flag]:
            problems.append('index %s is not %s (indis%s = false)' % (spec.qualified_name, flag, flag))
    differences = planner.drift(spec, index, seen.desired_definition) if facts['table_matches'] else []
    facts['definition_matches'] = facts['table_matches'] and not differences
    if differences:
        problems.append('index %s does not have the desired definition (%s).\n  existing: %s\n  desired:  %s'
                        % (spec.qualified_name, ', '.join(differences), index.definition, seen.desired_definition))
    return facts, problems


def check_absent(conn, spec):
    """For state=absent: the index is gone.  Returns (facts, problems)."""
    index = catalog.get_index(conn, spec.schema, spec.name)
    facts = dict(exists=index is not None, definition=index.definition if index else None,
                 valid=index.valid if index else None, size_bytes=index.size_bytes if index else None,
                 size=catalog.size_pretty(conn, index.size_bytes) if index else None)
    if index is None:
        return facts, []
    return facts, ['index %s still exists (%s, on table %s): %s' % (
        spec.qualified_name, 'valid' if index.valid else 'INVALID', index.qualified_table, index.definition)]


def run_amcheck(conn, index_oid, extension_schema, heapallindexed):
    """bt_index_check of one B-tree index, in a READ ONLY transaction.  Returns the check dict."""
    result = dict(status=PASSED, heapallindexed=heapallindexed, message=None, duration_s=None)
    started = time.monotonic()
    try:
        with read_only(conn) as cur:
            cur.execute(sql.SQL('SELECT {}(%s::oid::regclass, %s)').format(
                sql.Identifier(extension_schema, 'bt_index_check')), (index_oid, heapallindexed))
    except psycopg2.Error as exc:
        result.update(status=FAILED, message='bt_index_check%s: %s' % (
            ' (heapallindexed)' if heapallindexed else '', one_line(exc)), sqlstate=exc.pgcode)
    result['duration_s'] = round(time.monotonic() - started, 3)
    return result


# --------------------------------------------------------------------------------------------------
# The plan
# --------------------------------------------------------------------------------------------------

def explain(conn, text, analyze=False, timeout_ms=None):
    """EXPLAIN (VERBOSE, FORMAT JSON) of a bound verification query, read-only and rolled back.

    With ``analyze`` the query is executed (EXPLAIN ANALYZE, BUFFERS).  Returns the top object:
    Plan, and Planning Time, Execution Time, Query Identifier when the server gives them.
    """
    options = 'ANALYZE, BUFFERS, VERBOSE, FORMAT JSON' if analyze else 'VERBOSE, FORMAT JSON'
    with read_only(conn, timeout_ms) as cur:
        cur.execute('EXPLAIN (%s) %s' % (options, text))
        document = cur.fetchone()[0]
    return document[0]


def plan_nodes(node, schema=None):
    """Every node of a plan tree, depth first, with the schema of the relation it reads (a Bitmap
    Index Scan takes it from the Bitmap Heap Scan above it)."""
    schema = node.get('Schema', schema)
    yield node, schema
    for child in node.get('Plans', []):
        yield from plan_nodes(child, schema)


def index_scans(plan):
    """The index scans of a plan: node type, index, its schema, relation and direction."""
    return [dict(node_type=node['Node Type'], index=node.get('Index Name'), schema=schema,
                 relation=node.get('Relation Name'), direction=node.get('Scan Direction'))
            for node, schema in plan_nodes(plan) if node['Node Type'] in INDEX_SCANS]


def scan_summary(plan):
    """How the plan reads its relations, one short string per scan node (for the report)."""
    found = []
    for node, schema in plan_nodes(plan):
        if 'Index Name' in node:
            found.append('%s using %s' % (node['Node Type'], node['Index Name']))
        elif 'Relation Name' in node and node['Node Type'] != 'Bitmap Heap Scan':
            found.append('%s on %s' % (node['Node Type'], node['Relation Name']))
    return ', '.join(found) or plan.get('Node Type')


def _node_title(node):
    title = node['Node Type']
    if node.get('Scan Direction') == 'Backward':
        title += ' Backward'
    relation = node.get('Relation Name')
    if relation and node.get('Schema'):
        relation = '%s.%s' % (node['Schema'], relation)
    if 'Index Name' in node and node['Node Type'] != 'Bitmap Index Scan':
        title += ' using %s' % node['Index Name']
    if relation:
        title += ' on %s' % relation
    elif 'Index Name' in node:
        title += ' on %s' % node['Index Name']
    if 'Total Cost' in node:
        title += '  (cost=%.2f..%.2f rows=%s)' % (node['Startup Cost'], node['Total Cost'], node['Plan Rows'])
    if 'Actual Total Time' in node:
        title += ' (actual time=%.3f..%.3f rows=%s loops=%s)' % (
            node['Actual Startup Time'], node['Actual Total Time'], node['Actual Rows'], node['Actual Loops'])
    return title


def plan_lines(node, depth=0):
    """The plan tree as text lines, like EXPLAIN's text format (to show a person)."""
    pad = '      ' * depth
    lines = [(pad[:-4] + '->  ' if depth else '') + _node_title(node)]
    for key in PLAN_DETAILS:
        if key in node:
            value = node[key]
            lines.append('%s%s: %s' % (pad + ('    ' if depth else '  '), key,
                                       ', '.join(value) if isinstance(value, list) else value))
    for child in node.get('Plans', []):
        lines.extend(plan_lines(child, depth + 1))
    return lines


def expected_indexes(conn, spec, facts):
    """(schema, name) of the indexes whose scan proves the index is used: the index itself, and for a
    partitioned index the indexes attached to it on the partitions."""
    expected = set([(spec.schema, spec.name)])
    if facts.get('partitioned') and facts.get('oid'):
        for schema, name, _valid in catalog.attached_indexes(conn, facts['oid']).values():
            expected.add((schema, name))
    return expected


def check_plan(conn, spec, text, expected, mode, analyze=False, timeout_ms=None):
    """Does the planner use the index for its verification query?

    ``mode``: fail, warn, or record (the baseline: the plan is kept, not judged).  Returns the check dict.
    """
    top = explain(conn, text, analyze, timeout_ms)
    plan = top['Plan']
    scans = index_scans(plan)
    used = [scan for scan in scans if (scan['schema'] or spec.schema, scan['index']) in expected]
    result = dict(query=text, expected_index=spec.qualified_name, index_scans=scans, scan=scan_summary(plan),
                  used=bool(used), plan_text=plan_lines(plan), plan=plan, query_identifier=top.get('Query Identifier'),
                  planning_time_ms=top.get('Planning Time'), execution_time_ms=top.get('Execution Time'),
                  explain_analyze=analyze, message=None)
    if mode == 'record':
        result['status'] = 'recorded'
    elif used:
        result['status'] = PASSED
        result['message'] = '%s uses %s' % (used[0]['node_type'], spec.qualified_name)
    else:
        result['status'] = FAILED if mode == 'fail' else WARNING
        result['message'] = ('the planner does not use index %s for its verification query (%s); the plan is:\n    %s'
                             % (spec.qualified_name, result['scan'], '\n    '.join(result['plan_text'])))
    return result


# --------------------------------------------------------------------------------------------------
# Latency
# --------------------------------------------------------------------------------------------------

def percentile(values, pct):
    """The pct-th percentile by linear interpolation between closest ranks (PostgreSQL's
    percentile_cont); None without values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * pct / 100.0
    low, high = int(math.floor(position)), int(math.ceil(position))
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarize(samples_ms, timed_out_at_ms=None):
    """p50, p95, p99, mean, min, max (ms, 3 decimals) of the timed executions.

    An execution that statement_timeout cancelled counts at the timeout: the figures are then
    lower bounds (``lower_bound``).
    """
    values = list(samples_ms) + ([timed_out_at_ms] if timed_out_at_ms is not None else [])

    def rounded(value):
        return None if value is None else round(value, 3)
    return dict(count=len(values), p50_ms=rounded(percentile(values, 50)), p95_ms=rounded(percentile(values, 95)),
                p99_ms=rounded(percentile(values, 99)),
                mean_ms=rounded(sum(values) / len(values)) if values else None,
                min_ms=rounded(min(values)) if values else None, max_ms=rounded(max(values)) if values else None,
                lower_bound=timed_out_at_ms is not None)


def _timed_execution(conn, text, timeout_ms):
    """Milliseconds to execute the query and fetch its rows, in a READ ONLY transaction rolled back."""
    with read_only(conn, timeout_ms) as cur:
        started = time.perf_counter()
        cur.execute(text)
        if cur.description is not None:
            cur.fetchall()
        return (time.perf_counter() - started) * 1000.0


def sample_latency(conn, text, samples, warmup=1, timeout_ms=5000, budget_s=30.0):
    """Run the query ``warmup`` + ``samples`` times, timing each execution on the client.

    Bounded for production: each execution's statement_timeout is the smaller of ``timeout_ms``
    (0: none) and what is left of the query's time budget ``budget_s``; sampling stops when the budget
    is spent or at the first execution the timeout cancels (it counts at the timeout value and makes
    the percentiles lower bounds).  ``cost_s`` is the wall time the sampling took, overhead included.
    """
    taken, warm = [], []
    timed_out_at, stopped = None, None
    started = time.monotonic()
    for run in range(warmup + samples):
        left_ms = int((budget_s - (time.monotonic() - started)) * 1000)
        if left_ms < 1:
            stopped = 'budget'
            break
        limit = min(timeout_ms, left_ms) if timeout_ms else left_ms
        try:
            elapsed = _timed_execution(conn, text, limit)
        except psycopg2.Error as exc:
            if exc.pgcode != QUERY_CANCELED:
                raise
            timed_out_at, stopped = float(limit), 'timeout'
            break
        (warm if run < warmup else taken).append(round(elapsed, 3))
    result = dict(status='measured', requested=samples, warmup=warmup, samples_ms=taken, warmup_ms=warm,
                  timed_out_at_ms=timed_out_at, stopped=stopped, executions=len(taken) + len(warm) + (1 if timed_out_at else 0),
                  statement_timeout_ms=timeout_ms, budget_s=budget_s, cost_s=round(time.monotonic() - started, 3))
    result.update(summarize(taken, timed_out_at))
    return result


def compare_latency(before, after, target_pct, mode):
    """p95 before vs after the build, and the reduction in percent against ``target_pct``.

    Both p95 are recomputed from the measured samples.  ``at_least``: the baseline was cut by its
    timeout, so the true reduction is at least the one shown.  ``mode``: fail, warn or skip when the
    reduction misses the target.
    """
    result = dict(status=SKIPPED, target_pct=target_pct, p95_before_ms=None, p95_after_ms=None, reduction_pct=None,
                  meets_target=None, at_least=False, message=None)
    if mode == 'skip':
        result['message'] = 'latency check off (latency_check: skip)'
        return result
    if not before or before.get('status') != 'measured' or not (before.get('samples_ms') or before.get('timed_out_at_ms')):
        result['message'] = 'no baseline: %s' % ((before or {}).get('reason') or 'none was measured before the build')
        return result
    if not after or after.get('status') != 'measured' or not (after.get('samples_ms') or after.get('timed_out_at_ms')):
        result['message'] = 'not measured after the build: %s' % ((after or {}).get('reason') or 'no samples')
        return result
    p95_before = summarize(before['samples_ms'], before.get('timed_out_at_ms'))
    p95_after = summarize(after['samples_ms'], after.get('timed_out_at_ms'))
    result.update(p95_before_ms=p95_before['p95_ms'], p95_after_ms=p95_after['p95_ms'])
    if p95_before['p95_ms'] <= 0:
        result['message'] = 'the baseline p95 is 0 ms: nothing to compare'
        return result
    reduction = (p95_before['p95_ms'] - p95_after['p95_ms']) / p95_before['p95_ms'] * 100.0
    result.update(reduction_pct=round(reduction, 1), at_least=p95_before['lower_bound'] and not p95_after['lower_bound'],
                  meets_target=reduction >= target_pct and not p95_after['lower_bound'])
    if result['meets_target']:
        result['status'] = PASSED
        result['message'] = 'p95 %.3f ms -> %.3f ms: %s%.1f %% lower (target >= %g %%)' % (
            p95_before['p95_ms'], p95_after['p95_ms'], '>= ' if result['at_least'] else '', reduction, target_pct)
    else:
        result['status'] = FAILED if mode == 'fail' else WARNING
        result['message'] = 'p95 %.3f ms -> %.3f ms: %.1f %% lower, short of the target (>= %g %%)%s' % (
            p95_before['p95_ms'], p95_after['p95_ms'], reduction, target_pct,
            ' (the query hit its timeout after the build)' if p95_after['lower_bound'] else '')
    return result


def statement_stats(conn, query_identifier):
    """pg_stat_statements' calls and mean execution time of the query, when it is available.

    The query is found by the query identifier EXPLAIN VERBOSE prints (PostgreSQL 14+ with
    compute_query_id): the figures cover every execution of that query shape in this database
    (the application's as well as this module's) since pg_stat_statements was last reset.
    """
    if query_identifier is None:
        return dict(status='unavailable', reason='the server gives no query identifier (PostgreSQL 14+ with '
                                                 'compute_query_id, which pg_stat_statements turns on)')
    schema = catalog.extension_schema(conn, 'pg_stat_statements')
    if schema is None:
        return dict(status='unavailable', reason='pg_stat_statements is not installed in this database')
    try:
        stats = catalog.statement_stats(conn, schema, query_identifier)
    except psycopg2.Error as exc:
        return dict(status='unavailable', reason=one_line(exc))
    if stats is None:
        return dict(status='unavailable', reason='pg_stat_statements has no entry for query id %s' % query_identifier)
    return dict(status='reported', query_identifier=query_identifier, **stats)


# --------------------------------------------------------------------------------------------------
# Usage
# --------------------------------------------------------------------------------------------------

def review_indexes(conn, table_oids):
    """The runbook's one-month review for these tables: unused indexes (idx_scan = 0, not backing a
    unique or primary key constraint), duplicates (same definition under another name) and redundant
    ones (a B-tree whose key columns lead another B-tree's)."""
    indexes = catalog.table_indexes(conn, table_oids)
    unused, groups, redundant = [], {}, []
    for index in indexes:
        index['size'] = catalog.size_pretty(conn, index['size_bytes'])
        if index['idx_scan'] == 0 and index['valid'] and not (index['unique'] or index['primary'] or index['constraint']):
            unused.append(dict(index='%s.%s' % (index['schema'], index['name']), table=index['table'], idx_scan=0, size_bytes=index['size_bytes'],
                               size=index['size']))
        groups.setdefault((index['table_oid'], definition_key(index)), []).append(index)
    duplicates = [dict(table='%s.%s' % (group[0]['schema'], group[0]['table']),
                       indexes=['%s.%s' % (index['schema'], index['name']) for index in group],
                       definition=group[0]['definition'])
                  for group in groups.values() if len(group) > 1]
    plain = [index for index in indexes
             if all((index['method'] == 'btree', not index['expressions'], not index['predicate'], index['valid']))]
    for index in plain:
        keys = list(index['columns'][:index['key_columns']])
        for other in plain:
            other_keys = list(other['columns'][:other['key_columns']])
            covers = len(keys) < len(other_keys) and other_keys[:len(keys)] == keys
            if other['oid'] != index['oid'] and other['table_oid'] == index['table_oid'] and not index['unique'] \
                    and covers:
                redundant.append(dict(index='%s.%s' % (index['schema'], index['name']),
                                      covered_by='%s.%s' % (other['schema'], other['name']),
                                      size_bytes=index['size_bytes'], size=index['size']))
                break
    return dict(stats_reset=catalog.stats_reset(conn), unused=unused, duplicates=duplicates, redundant=redundant)


def definition_key(index):
    """An index definition without its name: equal keys are the same index under two names."""
    return definition_without_name(index['definition'], index['quoted_name'])


# --------------------------------------------------------------------------------------------------
# A change set
# --------------------------------------------------------------------------------------------------

class Target(object):
    """One change set entry to verify (read by changeset.read_changeset, as every module reads it): the
    desired index, its verification query, its lock_timeout."""

    def __init__(self, entry):
        self.entry = entry
        self.spec = entry.spec
        self.query = VerifyQuery.from_entry(entry)
        self.lock_timeout = entry.params['lock_timeout']


def _options(options):
    opts = dict(DEFAULT_OPTIONS)
    opts.update(dict((key, value) for key, value in (options or {}).items() if value is not None))
    choices = dict((key, spec['choices']) for key, spec in VERIFY_ARGUMENT_SPEC.items() if spec.get('choices'))
    for key, allowed in choices.items():
        if opts[key] not in allowed:
            raise SpecError('%s must be one of %s, got %r' % (key, ', '.join(allowed), opts[key]))
    for key in ('samples', 'warmup'):
        if not isinstance(opts[key], int) or opts[key] < 0:
            raise SpecError('%s must be an integer >= 0, got %r' % (key, opts[key]))
    if not isinstance(opts['query_budget'], (int, float)) or opts['query_budget'] <= 0:
        raise SpecError('query_budget must be a number of seconds > 0, got %r' % (opts['query_budget'],))
    if not isinstance(opts['target_reduction'], (int, float)) or not 0 <= opts['target_reduction'] <= 100:
        raise SpecError('target_reduction must be a percentage between 0 and 100, got %r' % (opts['target_reduction'],))
    return opts


def _baseline_by_index(baseline):
    """{(schema, name): entry} of the ``indexes`` a phase=baseline run returned."""
    found = {}
    for entry in baseline or []:
        if not isinstance(entry, dict) or not entry.get('name'):
            raise SpecError('baseline must be the indexes returned by pg_index_verify with phase=baseline '
                            '(dicts with name, schema and latency), got an entry %r' % (entry,))
        found[(entry.get('schema') or 'public', entry['name'])] = entry
    return found


def _check_server(conn):
    version = catalog.server_version_num(conn)
    if version < ensure.MIN_SERVER_VERSION:
        raise SpecError('PostgreSQL %d.%d is not supported: chefcloud.pgindex needs PostgreSQL 13 or newer'
                        % (version // 10000, version % 10000))
    if catalog.in_recovery(conn):
        raise SpecError('the server is a standby (in recovery): run pg_index_verify against the primary (the desired '
                        'definition is normalized on a temporary table, which a standby cannot create)')
    return version


def _prepare_amcheck(conn, opts, check_mode, result):
    """Schema of the amcheck extension, creating it only when asked; (schema, reason it is missing)."""
    if opts['amcheck'] == 'off' or opts['phase'] != 'verify' or opts['state'] != 'present':
        return None, 'amcheck: off'
    schema = catalog.extension_schema(conn, 'amcheck')
    if schema is not None:
        return schema, None
    if not opts['create_amcheck']:
        reason = ('the amcheck extension is not installed in database %s: structural check skipped '
                  '(create_amcheck: true installs it)' % result['database'])
        result['warnings'].append(reason)
        result['amcheck']['message'] = reason
        return None, reason
    if not catalog.extension_available(conn, 'amcheck'):
        raise SpecError('create_amcheck: this server has no amcheck extension to install (it ships with the '
                        'PostgreSQL contrib modules)')
    result['changed'] = True
    if check_mode:
        return None, 'check mode: the amcheck extension would be created, then the indexes checked'
    try:
        with conn.cursor() as cur:
            cur.execute('CREATE EXTENSION IF NOT EXISTS amcheck')
    except psycopg2.Error as exc:
        raise SpecError('create_amcheck: CREATE EXTENSION amcheck failed: %s' % one_line(exc))
    result['amcheck']['created'] = True
    return catalog.extension_schema(conn, 'amcheck'), None


def _analyze(conn, targets, check_mode, result):
    """ANALYZE each table of the change set, so that a fresh index is planned with fresh statistics."""
    seen = []
    for target in targets:
        spec = target.spec
        if (spec.schema, spec.table) in seen or catalog.get_table(conn, spec.schema, spec.table) is None:
            continue
        seen.append((spec.schema, spec.table))
        result['changed'] = True
        if check_mode:
            continue
        try:
            with conn.cursor() as cur:
                cur.execute(sql.SQL('ANALYZE {}').format(spec.table_identifier()))
        except psycopg2.Error as exc:
            result['problems'].append('ANALYZE %s failed: %s' % (spec.qualified_table, one_line(exc)))
            continue
        result['analyzed'].append(spec.qualified_table)


def _amcheck(conn, facts, opts, schema, reason):
    if opts['amcheck'] == 'off':
        return dict(status='off', message=None)
    if schema is None:
        return dict(status=SKIPPED, message=reason)
    if not facts.get('exists'):
        return dict(status=SKIPPED, message='the index does not exist')
    if not facts.get('valid'):
        return dict(status=SKIPPED, message='the index is INVALID: amcheck only checks valid indexes')
    if facts.get('partitioned'):
        return dict(status=SKIPPED, message='a partitioned index has no storage: its partitions\' indexes hold the data')
    method = catalog.index_access_method(conn, facts['oid'])
    if method != 'btree':
        return dict(status=SKIPPED, message='amcheck checks B-tree indexes; this one is %s' % method)
    return run_amcheck(conn, facts['oid'], schema, opts['amcheck'] == 'heapallindexed')


def _why_not_sample(opts, entry, text, phase):
    """The reason not to time this query, or None to time it."""
    if opts['samples'] <= 0:
        return 'latency sampling off (samples: 0)'
    if text is None:
        return 'no verification query' if entry['label'] is None else 'the verification query could not run'
    if phase == 'baseline' and entry['in_place']:
        return 'already in place before this run'
    if phase == 'verify' and not entry.get('valid'):
        return 'the index is not valid'
    if phase == 'verify' and (entry['plan'] or {}).get('status') == FAILED:
        return 'the planner does not use the index'
    return None


def _plan_step(conn, target, entry, facts, opts, ctx):
    """Bind the verification query and check (or, in the baseline, record) its plan; the bound text,
    or None when there is nothing to time."""
    spec, phase = target.spec, opts['phase']
    if target.query is None:
        entry['plan'] = dict(status=SKIPPED, message='no verification query (verify.query) for this index')
        return None
    try:
        text = target.query.bind(conn)
    except SpecError as exc:
        entry['problems'].append(exc.msg)
        return None
    mode = 'record' if phase == 'baseline' else opts['plan_check']
    if mode == 'skip':
        entry['plan'] = dict(status=SKIPPED, query=text, message='plan check off (plan_check: skip)')
        return text
    if phase == 'verify' and not facts['valid']:
        entry['plan'] = dict(status=SKIPPED, query=text, message='the index is missing or INVALID: the planner cannot use it')
        return text
    try:
        entry['plan'] = check_plan(conn, spec, text, expected_indexes(conn, spec, facts), mode,
                                   opts['explain_analyze'] and phase == 'verify', ctx['timeout_ms'])
    except psycopg2.Error as exc:
        entry['problems'].append('the verification query of index %s failed: %s%s' % (
            spec.qualified_name, one_line(exc),
            ' (query_timeout %s)' % opts['query_timeout'] if exc.pgcode == QUERY_CANCELED else ''))
        return None
    if entry['plan']['status'] == FAILED:
        entry['problems'].append(entry['plan']['message'])
    elif entry['plan']['status'] == WARNING:
        entry['warnings'].append(entry['plan']['message'])
    return text


def _latency_step(conn, target, entry, text, opts, ctx):
    """Time the query (unless there is a reason not to), then read pg_stat_statements for it."""
    reason = _why_not_sample(opts, entry, text, opts['phase'])
    if reason is not None:
        entry['latency'] = dict(status=SKIPPED, reason=reason)
        return
    try:
        entry['latency'] = sample_latency(conn, text, opts['samples'], opts['warmup'], ctx['timeout_ms'],
                                          float(opts['query_budget']))
    except psycopg2.Error as exc:
        entry['problems'].append('timing the verification query of index %s failed: %s'
                                 % (target.spec.qualified_name, one_line(exc)))
        entry['latency'] = dict(status=SKIPPED, reason='the query failed: %s' % one_line(exc))
        return
    entry['pg_stat_statements'] = statement_stats(conn, (entry['plan'] or {}).get('query_identifier'))


def _comparison_step(target, entry, opts, ctx):
    """p95 before (from the baseline run) vs after, against the target reduction."""
    spec = target.spec
    before = ctx['baseline'].get((spec.schema, spec.name))
    if before is not None:
        entry['before'] = dict(latency=before.get('latency'), scan=(before.get('plan') or {}).get('scan'),
                               pg_stat_statements=before.get('pg_stat_statements'))
    entry['reduction'] = compare_latency((entry['before'] or {}).get('latency'), entry['latency'],
                                         opts['target_reduction'], opts['latency_check'])
    if entry['reduction']['status'] in (FAILED, WARNING):
        message = 'index %s: %s' % (spec.qualified_name, entry['reduction']['message'])
        (entry['problems'] if entry['reduction']['status'] == FAILED else entry['warnings']).append(message)


def _verify_present(conn, target, opts, ctx):
    """Every check of one index that should exist; in the baseline phase, only what the comparison needs."""
    spec, phase = target.spec, opts['phase']
    entry = dict(name=spec.name, schema=spec.schema, table=spec.table, state='present',
                 label=target.query.label if target.query else None, problems=[], warnings=[], in_place=False,
                 usage=None, amcheck=None, plan=None, latency=None, pg_stat_statements=None, before=None,
                 reduction=None)
    facts, problems = check_index(conn, spec, target.lock_timeout)
    entry.update(facts)
    entry['in_place'] = bool(facts['exists'] and facts['valid'] and facts['definition_matches'])
    if phase == 'verify':
        entry['problems'].extend(problems)
        if facts['oid'] is not None:  # read before this run's own executions of the query
            entry['usage'] = catalog.index_usage(conn, [facts['oid']]).get(facts['oid'])
        entry['amcheck'] = _amcheck(conn, facts, opts, ctx['amcheck_schema'], ctx['amcheck_reason'])
        if entry['amcheck']['status'] == FAILED:
            entry['problems'].append('index %s: amcheck found a problem: %s'
                                     % (spec.qualified_name, entry['amcheck']['message']))
    text = _plan_step(conn, target, entry, facts, opts, ctx)
    _latency_step(conn, target, entry, text, opts, ctx)
    if phase == 'verify':
        _comparison_step(target, entry, opts, ctx)
    return entry


def _verify_absent(conn, target):
    spec = target.spec
    entry = dict(name=spec.name, schema=spec.schema, table=spec.table, state='absent', label=None, problems=[],
                 warnings=[])
    facts, problems = check_absent(conn, spec)
    entry.update(facts)
    entry['problems'].extend(problems)
    return entry


def summary_row(entry, phase='verify'):
    """One flat line per index for reports: validity, size, plan, p95 before/after and reduction."""
    latency = entry.get('latency') or {}
    before = ((entry.get('before') or {}).get('latency') or {}) if phase == 'verify' else latency
    after = latency if phase == 'verify' else {}
    reduction = entry.get('reduction') or {}
    pgss = entry.get('pg_stat_statements') or {}

    def p95(measured):
        if measured.get('status') != 'measured' or not (measured.get('samples_ms') or measured.get('timed_out_at_ms')):
            return None, None
        stats = summarize(measured['samples_ms'], measured.get('timed_out_at_ms'))
        return stats['p95_ms'], stats['lower_bound']
    p95_before, before_cut = p95(before)
    p95_after, after_cut = p95(after)
    return dict(
        name=entry['name'], schema=entry['schema'], table=entry.get('table'), state=entry['state'],
        label=entry.get('label'), exists=entry.get('exists'), valid=entry.get('valid'),
        definition_matches=entry.get('definition_matches'), size_bytes=entry.get('size_bytes'), size=entry.get('size'),
        amcheck=(entry.get('amcheck') or {}).get('status'), plan=(entry.get('plan') or {}).get('status'),
        scan=(entry.get('plan') or {}).get('scan'), scan_before=(entry.get('before') or {}).get('scan'),
        p95_before_ms=p95_before, p95_before_lower_bound=before_cut, samples_before=len(before.get('samples_ms') or []),
        p95_after_ms=p95_after, p95_after_lower_bound=after_cut, samples_after=len(after.get('samples_ms') or []),
        p50_after_ms=after.get('p50_ms'), p99_after_ms=after.get('p99_ms'),
        reduction_pct=reduction.get('reduction_pct'), target_pct=reduction.get('target_pct'),
        meets_target=reduction.get('meets_target'), at_least=reduction.get('at_least'),
        latency=reduction.get('status'), latency_note=reduction.get('message') or latency.get('reason'),
        pgss_calls=pgss.get('calls'), pgss_mean_ms=pgss.get('mean_exec_time_ms'),
        idx_scan=(entry.get('usage') or {}).get('idx_scan'), ok=not entry['problems'], problems=entry['problems'])


def _sampling_cost(entries, opts, timeout_ms):
    measured = [entry['latency'] for entry in entries if (entry.get('latency') or {}).get('status') == 'measured']
    return dict(queries=len(measured), executions=sum(m['executions'] for m in measured),
                seconds=round(sum(m['cost_s'] for m in measured), 3),
                timeouts=sum(1 for m in measured if m['timed_out_at_ms'] is not None),
                budget_exhausted=sum(1 for m in measured if m['stopped'] == 'budget'),
                samples=opts['samples'], warmup=opts['warmup'], query_timeout_ms=timeout_ms,
                query_budget_s=float(opts['query_budget']))


def verify_indexes(connect, items, options=None, check_mode=False):
    """Verify a change set's indexes; return the module result, or raise VerifyError carrying it.

    ``items`` are change set entries (name, table, columns... and ``verify``: query, params, label).
    ``options``: see DEFAULT_OPTIONS and the module documentation.  ``phase=baseline`` runs before the
    build: it times the queries of the indexes not yet in place and judges nothing; ``phase=verify``
    checks everything and compares with ``baseline`` (the ``indexes`` a baseline run returned).
    Read-only, except ANALYZE (``analyze``) and CREATE EXTENSION amcheck (``create_amcheck``), which
    check mode skips.
    """
    opts = _options(options)
    if not isinstance(items, list) or not items:
        raise SpecError('indexes must be a non-empty list of change set entries (name, table, columns, verify...)')
    entries = read_changeset(items, dict(schema=opts['schema'], lock_timeout=opts['lock_timeout'], state=opts['state']),
                             require_definition=opts['state'] == 'present')
    targets = [Target(entry) for entry in entries]
    baseline = _baseline_by_index(opts['baseline'])
    conn = connect()
    version = _check_server(conn)
    apply_session_settings(conn, dict(lock_timeout=opts['lock_timeout'], standard_conforming_strings='on'))
    timeout_ms = int(round(duration_seconds(conn, 'query_timeout', opts['query_timeout']) * 1000))
    result = dict(changed=False, ok=True, phase=opts['phase'], state=opts['state'],
                  database=catalog.current_database(conn), server_version=version, indexes=[], summary=[],
                  problems=[], warnings=[], analyzed=[], review=None,
                  amcheck=dict(mode=opts['amcheck'], schema=None, created=False, message=None))
    if opts['state'] == 'absent':
        result['indexes'] = [_verify_absent(conn, target) for target in targets]
    else:
        if opts['analyze']:
            _analyze(conn, targets, check_mode, result)
        schema, reason = _prepare_amcheck(conn, opts, check_mode, result)
        result['amcheck']['schema'] = schema
        ctx = dict(timeout_ms=timeout_ms, baseline=baseline, amcheck_schema=schema, amcheck_reason=reason)
        for target in targets:
            try:
                result['indexes'].append(_verify_present(conn, target, opts, ctx))
            except PgIndexError as exc:  # the index cannot be observed at all (no such table, bad columns...)
                result['indexes'].append(dict(name=target.spec.name, schema=target.spec.schema, table=target.spec.table,
                                              state='present', label=None, problems=[exc.msg], warnings=[]))
        if opts['list_unused'] and opts['phase'] == 'verify':
            tables = [catalog.get_table(conn, t.spec.schema, t.spec.table) for t in targets]
            result['review'] = review_indexes(conn, sorted(set(table.oid for table in tables if table is not None)))
    result['summary'] = [summary_row(entry, opts['phase']) for entry in result['indexes']]
    result['sampling'] = _sampling_cost(result['indexes'], opts, timeout_ms)
    for entry in result['indexes']:
        result['problems'].extend(entry['problems'])
        result['warnings'].extend(entry['warnings'])
    result['ok'] = not result['problems']
    if result['problems']:
        details = dict(result)
        warnings = details.pop('warnings')
        raise VerifyError('%d problem(s) found verifying %d index(es) of the change set:\n%s%s' % (
            len(result['problems']), len(targets),
            '\n'.join('  - ' + problem.replace('\n', '\n    ') for problem in result['problems']),
            ''.join('\n  warning: ' + warning.replace('\n', '\n    ') for warning in warnings)), **details)
    return result

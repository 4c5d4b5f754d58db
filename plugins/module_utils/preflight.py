# -*- coding: utf-8 -*-
# Copyright: ChefCloud Platform Engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_preflight: is it safe to start building these indexes now, and if not, exactly why.

Read only: catalog and activity reads, plus the rolled-back normalization probe of each desired
index (the same ``observe`` and ``make_plan`` as pg_concurrent_index, so the preflight sees what the
deploy will see).  Every check is one function returning ``{name, status, message, data}``, status
``pass``, ``warn`` or ``fail``; ``run_preflight`` runs the selected groups of checks and fails
(PreflightFailed) only when a check failed.

Free disk space is measured where the files are, on the database host, which a module running on a
bastion cannot do: the space check estimates what the build will write and where, the role runs
``df -P -B1`` on the database host, and ``check_disk`` judges that output against the estimate.

By concern: this module reads the inputs and runs the checks; the result shape is preflight_result.py,
the size model preflight_space.py, the df judge preflight_disk.py (their names are importable from here).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.chefcloud.pgindex.plugins.module_utils import catalog, ensure
from ansible_collections.chefcloud.pgindex.plugins.module_utils.changeset import read_changeset, shared_option
from ansible_collections.chefcloud.pgindex.plugins.module_utils.connection import psycopg2
from ansible_collections.chefcloud.pgindex.plugins.module_utils.errors import DriftError, PgIndexError, SpecError
from ansible_collections.chefcloud.pgindex.plugins.module_utils.execute import (
    apply_session_settings, duration_seconds, one_line)
from ansible_collections.chefcloud.pgindex.plugins.module_utils.index_spec import definition_without_name
# The result shape, the space model and the disk judge live in their own modules; their names stay
# importable from here.
from ansible_collections.chefcloud.pgindex.plugins.module_utils.preflight_result import (  # noqa: F401 pylint: disable=unused-import
    FAIL, PASS, SEVERITY, WARN, check, human_bytes, worst)
from ansible_collections.chefcloud.pgindex.plugins.module_utils.preflight_space import (  # noqa: F401 pylint: disable=unused-import
    DEFAULT_FILLFACTOR, EXPRESSION_WIDTH, NONLEAF_FILL, VARLENA_WIDTH, _maxalign, _storage_param, column_width,
    estimate_index_bytes, estimate_rows)
from ansible_collections.chefcloud.pgindex.plugins.module_utils.preflight_disk import (  # noqa: F401 pylint: disable=unused-import
    check_disk, parse_df)

# Groups of checks, in the order they run (option ``checks``).
GROUPS = ('server', 'privileges', 'tables', 'indexes', 'activity', 'space', 'replication', 'archiving')

# pg_preflight's options, written once: the module takes this spec, run_preflight its defaults. The options an
# entry of ``indexes`` also has (schema, state, lock_timeout, on_drift, on_invalid) are the index options' own
# (changeset.shared_option), so their defaults and choices are the same everywhere.
PREFLIGHT_ARGUMENT_SPEC = dict(
    indexes=dict(type='list', elements='dict', default=[]),
    schema=shared_option('schema'),
    state=shared_option('state'),
    checks=dict(type='list', elements='str', choices=list(GROUPS), default=list(GROUPS)),
    min_version=dict(type='str', default='13'),
    max_transaction_age=dict(type='str', default='5min'),
    max_idle_in_transaction=dict(type='str', default='1min'),
    max_replication_lag=dict(type='str', default='1GB'),
    min_free_percent=dict(type='int', default=10),
    free_margin_percent=dict(type='int', default=20),
    data_directory=dict(type='str'),
    tablespace_paths=dict(type='dict', default={}),
    on_drift=shared_option('on_drift'),
    on_invalid=shared_option('on_invalid'),
    lock_timeout=shared_option('lock_timeout'),
)
DEFAULTS = dict((name, spec.get('default')) for name, spec in PREFLIGHT_ARGUMENT_SPEC.items() if name != 'indexes')
# Options of the preflight that are defaults for the entries of ``indexes`` (an entry may set its own).
ENTRY_DEFAULTS = ('schema', 'lock_timeout', 'on_drift', 'on_invalid')

# Lock modes that conflict with SHARE UPDATE EXCLUSIVE, the lock CREATE/DROP INDEX CONCURRENTLY take.
CONFLICTING_MODES = ('ShareUpdateExclusiveLock', 'ShareLock', 'ShareRowExclusiveLock', 'ExclusiveLock',
                     'AccessExclusiveLock')

# Role or database defaults that hurt a long build, with what they do to it.
HURTFUL_SETTINGS = (
    ('statement_timeout', 'cancels any statement that runs longer. pg_concurrent_index sets its own '
     'statement_timeout (pgindex_statement_timeout, default 0) in the build session, but a build run by hand '
     'would be cancelled and leave an INVALID index'),
    ('lock_timeout', 'pg_concurrent_index overrides it in the build session and bounds its own lock waits, '
     'but a build run by hand would give up after this long and leave an INVALID index'),
    ('idle_session_timeout', 'closes sessions idle for longer: the modules open a new session for each index, '
     'but a psql session kept open to watch the build would be closed'),
    ('transaction_timeout', 'cancels any transaction that lasts longer, and the build session does not reset '
     'it: a build longer than this fails (its INVALID leftover is dropped). Reset it for the deploying role '
     '(ALTER ROLE ... RESET transaction_timeout) unless the builds are known to be shorter'),
)

MAX_QUERY_CHARS = 200
_SECRET = re.compile(r"(password\s*=?\s*)('(?:[^']|'')*'|\S+)", re.IGNORECASE)


class PreflightFailed(PgIndexError):
    """At least one check failed: nothing should be built now."""


def _details(exc):
    """The details of a PgIndexError, as check data."""
    return dict((key, value) for key, value in exc.details.items() if key not in ('name', 'status', 'message'))


# --------------------------------------------------------------------------- formatting helpers
def query_text(text):
    """A query from pg_stat_activity for a message: one line, password literals masked, cut short."""
    if text is None:
        return None
    text = _SECRET.sub(lambda m: m.group(1) + "'********'", ' '.join(text.split()))
    return text if len(text) <= MAX_QUERY_CHARS else text[:MAX_QUERY_CHARS] + '...'


def _lock_mode(mode):
    """'ShareRowExclusiveLock' -> 'SHARE ROW EXCLUSIVE'."""
    return ' '.join(re.findall('[A-Z][a-z]*', mode[:-len('Lock')] if mode.endswith('Lock') else mode)).upper()


def _who(session):
    """'pid 123 (user alice, application psql, idle in transaction, transaction open 12.5 s)'."""
    parts = ['user %s' % session.get('user')]
    if session.get('application_name'):
        parts.append('application %s' % session['application_name'])
    if session.get('state'):
        parts.append(session['state'])
    if session.get('xact_age_s') is not None:
        parts.append('transaction open %s s' % session['xact_age_s'])
    return 'pid %s (%s)' % (session.get('pid'), ', '.join(parts))


def _sessions_data(rows):
    out = []
    for row in rows:
        row = dict(row)
        row['query'] = query_text(row.get('query'))
        out.append(row)
    return out


def version_text(version_num):
    major, minor = version_num // 10000, version_num % 10000
    return '%d.%d' % (major, minor) if minor else '%d' % major


# --------------------------------------------------------------------------- inputs
def parse_version(name, value):
    """'13' or '14.4' -> 130000 or 140004."""
    match = re.match(r'^\s*(\d+)(?:\.(\d+))?\s*$', str(value))
    if not match:
        raise SpecError('%s must be a PostgreSQL version such as 13 or 14.4, got %r' % (name, value))
    return int(match.group(1)) * 10000 + int(match.group(2) or 0)


_SIZE = re.compile(r'^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$', re.IGNORECASE)
_SIZE_UNITS = {'': 1, 'b': 1, 'k': 1024, 'm': 1024 ** 2, 'g': 1024 ** 3, 't': 1024 ** 4}


def parse_size(name, value):
    """'1GB', '512MB', '64kB', '0' -> bytes (binary units, as PostgreSQL counts them)."""
    match = _SIZE.match(str(value))
    if not match:
        raise SpecError('%s must be a size such as 512MB or 1GB, got %r' % (name, value))
    unit = (match.group(2) or '').lower()[:1]
    return int(float(match.group(1)) * _SIZE_UNITS[unit])


def parse_percent(name, value, maximum=100):
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SpecError('%s must be a number of percent, got %r' % (name, value))
    if number < 0 or number > maximum:
        raise SpecError('%s must be between 0 and %d, got %r' % (name, maximum, value))
    return number


class Target(object):
    """One index of the change set: its IndexSpec and the entry it came from (changeset.ChangeSetEntry)."""

    def __init__(self, entry):
        self.entry = entry
        self.spec = entry.spec
        self.item = entry.item

    @property
    def plan_options(self):
        """The build policies pg_concurrent_index will use for this entry: its own on_drift, on_invalid...,
        else the defaults given to the preflight (the role passes pgindex_on_drift...)."""
        return dict(self.entry.options)


def parse_indexes(items, defaults=None, state='present'):
    """The ``indexes`` option (change set entries, read by changeset.read_changeset) -> Targets;
    SpecError naming the bad entry."""
    entries = read_changeset(items, defaults, require_definition=state == 'present')
    for entry in entries:
        if state != 'present' and not entry.spec.table:
            raise SpecError('index %s: table is required (the activity checks look at its table)' % entry.spec.name)
    return [Target(entry) for entry in entries]


# --------------------------------------------------------------------------- the run
class Preflight(object):
    """The connection, the change set, the options, and what several checks share (read once)."""

    def __init__(self, conn, targets, options, limits):
        self.conn = conn
        self.targets = targets
        self.options = options
        self.limits = limits
        self.state = options['state']
        self.session = catalog.session_info(conn)
        self.version = catalog.server_version_num(conn)
        self.in_recovery = catalog.in_recovery(conn)
        self.block_size = int(catalog.visible_settings(conn, ['block_size'])['block_size']['setting'])
        self.builds = {}      # qualified index name -> True when the plan builds it (indexes check)
        self.space = None     # the space check's estimate
        self._relations = {}
        self._storage = {}
        self._tablespaces = {}
        self._locks = None

    # -- shared reads
    @property
    def tables(self):
        """(schema, table) of the change set, in order, once each."""
        seen = []
        for target in self.targets:
            key = (target.spec.schema, target.spec.table)
            if key not in seen:
                seen.append(key)
        return seen

    def relation(self, key):
        if key not in self._relations:
            self._relations[key] = catalog.relation_summary(self.conn, key[0], key[1])
        return self._relations[key]

    def indexable(self, key):
        relation = self.relation(key)
        return relation is not None and relation['relkind'] in catalog.INDEXABLE_RELKINDS

    def storage(self, key):
        """Heaps, columns and the row estimate of a table (leaf partitions summed)."""
        if key not in self._storage:
            relation = self.relation(key)
            leaves = catalog.table_storage(self.conn, relation['oid'])
            columns = catalog.table_columns(self.conn, relation['oid'])
            widths = dict((column['name'], column_width(column)) for column in columns)
            rows, source = estimate_rows(leaves, sum(widths.values()), self.block_size)
            self._storage[key] = dict(
                leaves=leaves, columns=columns, widths=widths, rows=rows, rows_source=source,
                pages=sum(leaf['pages'] for leaf in leaves), table_bytes=sum(leaf['table_bytes'] for leaf in leaves),
                analyzed=all(leaf['relpages'] > 0 for leaf in leaves if leaf['pages'] > 0))
        return self._storage[key]

    def tablespace(self, target):
        name = target.spec.tablespace
        if name not in self._tablespaces:
            self._tablespaces[name] = catalog.index_tablespace(self.conn, name)
        return self._tablespaces[name]

    def locks(self):
        """Locks on the change set's tables that conflict with SHARE UPDATE EXCLUSIVE, classified."""
        if self._locks is None:
            oids = dict((self.relation(key)['oid'], '%s.%s' % key) for key in self.tables if self.relation(key))
            rows = catalog.relation_locks(self.conn, list(oids), CONFLICTING_MODES) if oids else []
            self._locks = []
            for row in rows:
                row['table'] = oids.get(row['table_oid'])
                row['query'] = query_text(row['query'])
                if row['backend_type'] == 'autovacuum worker' or row['vacuum_phase'] is not None:
                    row['kind'] = 'vacuum'
                elif row['build_command'] is not None:
                    row['kind'] = 'index_build'
                else:
                    row['kind'] = 'lock'
                self._locks.append(row)
        return self._locks

    def skip_reason(self, group):
        """Why a selected group of checks is not run here, or None."""
        if self.state == 'absent' and group in ('indexes', 'space'):
            return 'not needed to drop indexes (state=absent)'
        if self.in_recovery and group in ('indexes', 'space', 'replication', 'archiving'):
            return 'the server is a standby: run the preflight against the primary'
        return None


def run_preflight(connect, indexes, options):
    """Run the selected checks; return the result, or raise PreflightFailed when a check failed.

    ``connect`` returns a new connection; ``options`` as in DEFAULTS (None means the default).
    Every bad input is a SpecError raised before anything is read.
    """
    opts = dict(DEFAULTS)
    opts.update(dict((key, value) for key, value in (options or {}).items() if value is not None))
    unknown = sorted(set(opts['checks']) - set(GROUPS))
    if unknown:
        raise SpecError('unknown check(s) %s; choose from %s' % (', '.join(unknown), ', '.join(GROUPS)))
    if not isinstance(opts['tablespace_paths'] or {}, dict):
        raise SpecError('tablespace_paths must be a dict of tablespace name -> path on the database host')
    targets = parse_indexes(indexes, dict((key, opts[key]) for key in ENTRY_DEFAULTS + ('state',)), opts['state'])
    opts['min_version_num'] = parse_version('min_version', opts['min_version'])
    opts['max_replication_lag_bytes'] = parse_size('max_replication_lag', opts['max_replication_lag'])
    opts['min_free_percent'] = parse_percent('min_free_percent', opts['min_free_percent'], maximum=99)
    opts['free_margin_percent'] = parse_percent('free_margin_percent', opts['free_margin_percent'], maximum=1000)
    conn = connect()
    apply_session_settings(conn, dict(statement_timeout='0', lock_timeout=opts['lock_timeout']))
    limits = dict((name, duration_seconds(conn, name, opts[name]))
                  for name in ('max_transaction_age', 'max_idle_in_transaction'))
    preflight = Preflight(conn, targets, opts, limits)
    checks, skipped = [], []
    for group in GROUPS:
        reason = 'not selected (checks)' if group not in opts['checks'] else preflight.skip_reason(group)
        if reason:
            skipped.append(dict(group=group, reason=reason))
            continue
        for function in CHECKS[group]:
            checks.extend(_guarded(function, preflight))
    result = _result(preflight, checks, skipped)
    if result['status'] == FAIL:
        raise PreflightFailed(result.pop('msg'), **result)
    return result


def _guarded(function, preflight, name=None, *args):
    """Run one check function; a failure to run it is a failed check, never a traceback."""
    name = name or function.__name__[len('check_'):]
    try:
        out = function(preflight, *args)
    except PgIndexError as exc:
        return [check(name, FAIL, exc.msg, **_details(exc))]
    except psycopg2.Error as exc:
        hint = ''
        if exc.pgcode == '55P03':
            hint = ' (another session holds a lock on one of the tables: see the locks check)'
        return [check(name, FAIL, 'the %s check could not run: %s%s' % (name, one_line(exc), hint),
                      sqlstate=exc.pgcode)]
    return out if isinstance(out, list) else [out]


def _result(preflight, checks, skipped):
    counts = dict((status, sum(1 for c in checks if c['status'] == status)) for status in (PASS, WARN, FAIL))
    status = worst([c['status'] for c in checks])
    session = preflight.session
    result = dict(
        changed=False, status=status, counts=counts, checks=checks, skipped_checks=skipped,
        failed_checks=[c['name'] for c in checks if c['status'] == FAIL],
        server=dict(version=session['server_version'], version_num=preflight.version,
                    in_recovery=preflight.in_recovery, database=session['database'], user=session['current_user']),
        space=preflight.space or empty_space(preflight.options),
    )
    head = 'preflight %s: %d failed, %d warnings, %d passed' % (status.upper(), counts[FAIL], counts[WARN], counts[PASS])
    lines = ['%s %s: %s' % (c['status'].upper(), c['name'], c['message']) for c in checks if c['status'] != PASS]
    if status == FAIL:
        head += '; nothing should be built now'
    result['msg'] = '\n'.join([head] + lines)
    return result


# --------------------------------------------------------------------------- server
def check_version(pf):
    minimum = max(pf.options['min_version_num'], ensure.MIN_SERVER_VERSION)
    version = pf.session['server_version'].split()[0]
    data = dict(version=version, version_num=pf.version, min_version=version_text(minimum),
                full_version=pf.session['version'])
    if pf.version < minimum:
        return check('version', FAIL, 'PostgreSQL %s is older than the minimum %s (min_version; chefcloud.pgindex '
                     'needs 13 or newer): upgrade the server first' % (version, version_text(minimum)), **data)
    low, high = ensure.BROKEN_CONCURRENT_BUILDS
    if low <= pf.version < high:
        if pf.state == 'absent':
            return check('version', WARN, 'PostgreSQL %s: dropping indexes is safe, but indexes built concurrently on '
                         '14.0 to 14.3 may miss rows; upgrade to the latest 14.x and REINDEX them' % version, **data)
        return check('version', FAIL, 'PostgreSQL %s: CREATE INDEX CONCURRENTLY on 14.0 to 14.3 could miss rows, '
                     'corrupting the index (fixed in 14.4). Upgrade to the latest 14.x minor release first, then '
                     'rebuild any index built concurrently on this server' % version, **data)
    return check('version', PASS, 'PostgreSQL %s (minimum %s)' % (version, version_text(minimum)), **data)


def check_recovery(pf):
    if pf.in_recovery:
        return check('recovery', FAIL, 'the server is a standby (in recovery): indexes cannot be built or dropped '
                     'there. Run against the primary; the change replicates to the standbys.', in_recovery=True)
    return check('recovery', PASS, 'the server is a primary (not in recovery)', in_recovery=False)


def check_session(pf):
    s = pf.session
    text = 'connected to database %s as %s' % (s['database'], s['current_user'])
    if s['session_user'] != s['current_user']:
        text += ' (logged in as %s)' % s['session_user']
    if s['superuser']:
        text += ', a superuser'
    return check('session', PASS, text, user=s['current_user'], session_user=s['session_user'],
                 database=s['database'], superuser=s['superuser'])


def check_session_settings(pf):
    names = [name for name, _why in HURTFUL_SETTINGS]
    defaults = catalog.role_database_settings(pf.conn, names)
    effective = catalog.visible_settings(pf.conn, names)
    problems = []
    for name, why in HURTFUL_SETTINGS:
        for default in (d for d in defaults if d['name'] == name):
            if duration_seconds(pf.conn, name, default['value']) > 0:
                problems.append('%s = %s is set for the %s (%s): it %s'
                                % (name, default['value'], default['level'], pf.session['session_user']
                                   if default['level'] == 'role' else pf.session['database'], why))
    data = dict(role_database_settings=defaults,
                session_defaults=dict((name, value['reset_val']) for name, value in effective.items()))
    if problems:
        return check('session_settings', WARN, '; '.join(problems), **data)
    return check('session_settings', PASS, 'no role or database default for %s' % ', '.join(sorted(effective)),
                 **data)


# --------------------------------------------------------------------------- privileges and tables
def check_privileges(pf):
    user = pf.session['current_user']
    problems, tables = [], []
    for key in pf.tables:
        relation = pf.relation(key)
        if relation is None:
            continue
        qualified = '%s.%s' % key
        tables.append(dict(table=qualified, owner=relation['owner'], owned=relation['owned'],
                           schema_create=relation['schema_create']))
        if not relation['owned']:
            problems.append('%s is owned by %s, and %s is neither %s nor a member of it (CREATE and DROP INDEX need '
                            'ownership): run as %s (session_role) or GRANT %s TO %s'
                            % (qualified, relation['owner'], user, relation['owner'], relation['owner'],
                               relation['owner'], user))
        if pf.state == 'present' and not relation['schema_create']:
            problems.append('%s has no CREATE privilege on schema %s (CREATE INDEX needs it): GRANT CREATE ON '
                            'SCHEMA %s TO %s' % (user, key[0], key[0], user))
    tablespaces = []
    if pf.state == 'present':
        for target in pf.targets:
            space = pf.tablespace(target)
            if space['oid'] is None or space['name'] in [t['tablespace'] for t in tablespaces]:
                continue
            tablespaces.append(dict(tablespace=space['name'], create=space['create'],
                                    database_default=space['database_default']))
            if not space['create'] and not space['database_default']:
                problems.append('%s has no CREATE privilege on tablespace %s (from %s), where index %s goes: GRANT '
                                'CREATE ON TABLESPACE %s TO %s' % (user, space['name'], space['source'],
                                                                   target.spec.qualified_name, space['name'], user))
    data = dict(user=user, tables=tables, tablespaces=tablespaces)
    if problems:
        return check('privileges', FAIL, '; '.join(problems), **data)
    return check('privileges', PASS, '%s owns (or is a member of the owner of) the %d tables%s'
                 % (user, len(tables), ' and may create indexes in their schemas and tablespaces'
                    if pf.state == 'present' else ''), **data)


def check_tables(pf):
    problems, tables = [], []
    for key in pf.tables:
        qualified = '%s.%s' % key
        relation = pf.relation(key)
        if relation is None:
            problems.append('table %s does not exist' % qualified)
            continue
        kind = catalog.RELKIND_NAMES.get(relation['relkind'], 'relation of kind %r' % relation['relkind'])
        entry = dict(table=qualified, kind=kind, owner=relation['owner'], partitioned=relation['relkind'] == 'p')
        tables.append(entry)
        if not pf.indexable(key):
            problems.append('%s is a %s: indexes can only be built on tables, partitioned tables and materialized '
                            'views' % (qualified, kind))
            continue
        storage = pf.storage(key)
        entry.update(size_bytes=storage['table_bytes'], estimated_rows=storage['rows'],
                     rows_source=storage['rows_source'], partitions=len(storage['leaves']) if entry['partitioned']
                     else 0)
    if problems:
        return check('tables', FAIL, '; '.join(problems), tables=tables)
    partitioned = [t['table'] for t in tables if t['partitioned']]
    size = human_bytes(sum(t['size_bytes'] for t in tables))
    text = '%d tables, %s and ~%d rows in all' % (len(tables), size, sum(t['estimated_rows'] for t in tables))
    text += ('; partitioned (built on each partition, then attached): %s' % ', '.join(partitioned)
             if partitioned else '; none partitioned')
    return check('tables', PASS, text, tables=tables)


# --------------------------------------------------------------------------- indexes
STATE_OF_ACTION = {'created': 'absent', 'rebuilt': 'invalid', 'replaced': 'drifted', 'resumed': 'invalid',
                   'none': 'identical'}


def check_indexes(pf):
    checks = []
    for target in pf.targets:
        checks.extend(_guarded(check_index, pf, 'index %s' % target.spec.qualified_name, target))
    return checks


def check_index(pf, target):
    """Observe and plan one index exactly as pg_concurrent_index would, and judge the outcome."""
    spec = target.spec
    name = 'index %s' % spec.qualified_name
    key = (spec.schema, spec.table)
    if not pf.indexable(key):
        pf.builds[spec.qualified_name] = False
        return check(name, FAIL, 'not checked: table %s is missing or cannot carry an index (see the tables check)'
                     % spec.qualified_table, state='unknown')
    if not pf.relation(key)['owned']:
        pf.builds[spec.qualified_name] = False
        return check(name, FAIL, 'not checked: %s does not own table %s (see the privileges check)'
                     % (pf.session['current_user'], spec.qualified_table), state='unknown')
    try:
        ensure.check_spec_supported(pf.conn, spec)
        seen = ensure.observe(pf.conn, spec, 'present', pf.options['lock_timeout'])
    except PgIndexError as exc:
        pf.builds[spec.qualified_name] = False
        if exc.details.get('sqlstate') == '55P03':
            return check(name, FAIL, 'not checked: table %s stayed locked for longer than lock_timeout %s (see the '
                         'locks check)' % (spec.qualified_table, pf.options['lock_timeout']),
                         **dict(_details(exc), state='unknown'))
        return check(name, FAIL, exc.msg, **dict(_details(exc), state='invalid definition'))
    space = pf.tablespace(target)
    if space['oid'] is None:
        pf.builds[spec.qualified_name] = False
        return check(name, FAIL, 'tablespace %s (from %s) does not exist: create it, or fix the tablespace key of '
                     'index %s' % (space['name'], space['source'], spec.name), state='unknown tablespace',
                     tablespace=space['name'])
    index = seen.index
    data = dict(state=None, table=spec.qualified_table, desired_definition=seen.desired_definition,
                definition=index.definition if index else None, valid=index.valid if index else None,
                size_bytes=index.size_bytes if index else None, queries=[])
    equivalents = equivalent_indexes(pf, spec, seen)
    data['equivalent_indexes'] = equivalents
    try:
        plan = ensure.make_plan(spec, 'present', seen, target.plan_options)
    except DriftError as exc:
        pf.builds[spec.qualified_name] = False
        data.update(_details(exc), state='drifted')
        return check(name, FAIL, exc.msg, **data)
    except PgIndexError as exc:
        pf.builds[spec.qualified_name] = False
        data.update(_details(exc), state='being built' if exc.details.get('builders') else 'refused')
        return check(name, FAIL, exc.msg, **data)
    data['queries'] = [step.statement.as_string(pf.conn) for step in plan.steps]
    data['action'] = plan.action
    data['state'] = STATE_OF_ACTION.get(plan.action, plan.action)
    pf.builds[spec.qualified_name] = any(step.kind == 'create' for step in plan.steps)
    if plan.action == 'created':
        status, text = PASS, 'absent: will be built with CREATE INDEX CONCURRENTLY'
    elif plan.action == 'none' and not plan.warnings:
        status, text = PASS, 'present, valid and identical: nothing to do'
    elif plan.action == 'rebuilt':
        status, text = WARN, ('INVALID (left by a failed or interrupted build): will be dropped concurrently and '
                              'built again')
    else:
        status, text = WARN, ' '.join(plan.warnings) or plan.action
    if equivalents:
        status = worst([status, WARN])
        text += ('. Redundant: %s already %s the same definition (%s); %s %s doubles the write cost and the disk '
                 'space for nothing: drop one of them, or take %s out of the change set'
                 % (', '.join(e['index'] + ('' if e['valid'] else ' (INVALID)') for e in equivalents),
                    'has' if len(equivalents) == 1 else 'have', equivalents[0]['definition'],
                    'keeping' if plan.action == 'none' else 'building', spec.name, spec.name))
    return check(name, status, text, **data)


def equivalent_indexes(pf, spec, seen):
    """Other indexes on the table with the desired definition, under another name."""
    if seen.table is None or seen.desired_definition is None:
        return []
    quoted = getattr(seen, 'quoted_name', None) or catalog.quote_ident(pf.conn, spec.name)
    desired = definition_without_name(seen.desired_definition, quoted)
    found = []
    for other in catalog.table_indexes(pf.conn, [seen.table.oid]):
        if other['name'] == spec.name:
            continue
        if definition_without_name(other['definition'], other['quoted_name']) == desired:
            found.append(dict(index='%s.%s' % (other['schema'], other['name']), valid=other['valid'],
                              definition=other['definition']))
    return found


# --------------------------------------------------------------------------- activity
def check_old_transactions(pf):
    limit = pf.options['max_transaction_age']
    rows = catalog.long_transactions(pf.conn, pf.limits['max_transaction_age'])
    data = dict(max_transaction_age=limit, sessions=_sessions_data(rows))
    if not rows:
        return check('old_transactions', PASS, 'no transaction older than %s in database %s'
                     % (limit, pf.session['database']), **data)
    return check('old_transactions', FAIL, '%d transaction(s) older than %s (max_transaction_age) in database %s: %s. '
                 'CREATE INDEX CONCURRENTLY waits for every transaction older than its snapshot to end, so the build '
                 'would wait for these, then give up and leave nothing behind. Ask their owners to finish them, or '
                 'end them with pg_terminate_backend(pid)'
                 % (len(rows), limit, pf.session['database'],
                    '; '.join('%s running: %s' % (_who(r), query_text(r['query'])) for r in rows)), **data)


def check_idle_in_transaction(pf):
    limit = pf.options['max_idle_in_transaction']
    rows = catalog.idle_in_transaction(pf.conn)
    data = dict(max_idle_in_transaction=limit, sessions=_sessions_data(rows))
    if not rows:
        return check('idle_in_transaction', PASS, 'no session idle in transaction in database %s'
                     % pf.session['database'], **data)
    long_idle = [r for r in rows if r['state_age_s'] >= pf.limits['max_idle_in_transaction']]
    text = ''.join(('; '.join('%s, idle for %s s%s, last query: %s'
                              % (_who(r), r['state_age_s'], ', holding a snapshot' if r['holds_snapshot'] else '',
                                 query_text(r['query'])) for r in rows),
                    '. A session idle in transaction keeps its locks (and its snapshot in REPEATABLE READ or with an '
                    'open cursor) until its application ends the transaction, and the build waits for it'))
    if long_idle:
        return check('idle_in_transaction', FAIL, '%d session(s) idle in transaction for longer than %s '
                     '(max_idle_in_transaction): %s. Fix the application or end them with pg_terminate_backend(pid)'
                     % (len(long_idle), limit, text), **data)
    return check('idle_in_transaction', WARN, '%d session(s) idle in transaction (for less than %s): %s'
                 % (len(rows), limit, text), **data)


def check_prepared_transactions(pf):
    rows = catalog.prepared_transactions(pf.conn)
    here = [r for r in rows if r['this_database']]
    data = dict(prepared_transactions=rows)
    if not rows:
        return check('prepared_transactions', PASS, 'no prepared transaction (pg_prepared_xacts is empty)', **data)
    describe = '; '.join("'%s' (owner %s, database %s, prepared %s, %s s ago)"
                         % (r['gid'], r['owner'], r['database'], r['prepared'], r['age_s']) for r in rows)
    if here:
        return check('prepared_transactions', FAIL, 'prepared transaction(s) in database %s: %s. A prepared '
                     'transaction keeps its locks and its snapshot until someone runs COMMIT PREPARED or ROLLBACK '
                     'PREPARED, and CREATE INDEX CONCURRENTLY waits for it forever. Find out from its owner (the '
                     "transaction manager that prepared it) whether to commit it, then run COMMIT PREPARED '%s' or "
                     "ROLLBACK PREPARED '%s'" % (pf.session['database'], describe, here[0]['gid'], here[0]['gid']),
                     **data)
    return check('prepared_transactions', WARN, 'prepared transaction(s) in other databases: %s. They do not block '
                 'builds here, but hold back VACUUM everywhere: resolve them' % describe, **data)


def _lock_text(row):
    holder = 'a prepared transaction' if row['pid'] is None else _who(row)
    verb = 'holds' if row['granted'] else 'waits for'
    running = ' running: %s' % row['query'] if row['query'] else ''
    return '%s %s %s on %s%s' % (holder, verb, _lock_mode(row['mode']), row['table'], running)


def check_locks(pf):
    rows = [row for row in pf.locks() if row['kind'] == 'lock']
    data = dict(locks=rows)
    if not rows:
        return check('locks', PASS, 'no session holds or waits for a lock that conflicts with SHARE UPDATE EXCLUSIVE '
                     'on the %d tables' % len(pf.tables), **data)
    return check('locks', FAIL, '%s. These conflict with the SHARE UPDATE EXCLUSIVE lock the build needs: it would '
                 'wait for them and give up after lock_timeout. Let them finish, or end them (pg_cancel_backend / '
                 'pg_terminate_backend) after checking with their owner' % '; '.join(_lock_text(r) for r in rows),
                 **data)


def check_vacuum(pf):
    rows = [row for row in pf.locks() if row['kind'] == 'vacuum']
    data = dict(vacuums=rows)
    if not rows:
        return check('vacuum', PASS, 'no VACUUM or autovacuum running on the %d tables' % len(pf.tables), **data)
    blocking, yielding = [], []
    for row in rows:
        autovacuum = row['backend_type'] == 'autovacuum worker'
        wraparound = autovacuum and 'to prevent wraparound' in (row['query'] or '')
        what = 'autovacuum' if autovacuum else 'VACUUM'
        text = '%s: %s on %s (phase %s)' % (what, _who(row), row['table'], row['vacuum_phase'] or 'starting')
        if wraparound:
            text += ' to prevent wraparound'
        (yielding if autovacuum and not wraparound else blocking).append(text)
    if blocking:
        return check('vacuum', FAIL, '%s. It holds SHARE UPDATE EXCLUSIVE until it ends and does not give way: the '
                     'build would wait for it and give up after lock_timeout. Let it finish, then start'
                     % '; '.join(blocking + yielding), **data)
    return check('vacuum', WARN, '%s. Autovacuum holds SHARE UPDATE EXCLUSIVE but gives way: the build\'s lock '
                 'request cancels it after deadlock_timeout, and it runs again later' % '; '.join(yielding), **data)


def check_index_builds(pf):
    rows = [row for row in pf.locks() if row['kind'] == 'index_build']
    data = dict(builds=rows)
    if not rows:
        return check('index_builds', PASS, 'no other index build running on the %d tables' % len(pf.tables), **data)
    return check('index_builds', FAIL, '%s. Only one concurrent index build can run on a table at a time: the build '
                 'would wait for these and give up after lock_timeout. Wait for them to finish (see '
                 'pg_stat_progress_create_index)'
                 % '; '.join('%s is running %s on %s (phase: %s)'
                             % (_who(r), r['build_command'], r['table'], r['build_phase']) for r in rows), **data)


# --------------------------------------------------------------------------- space
def empty_space(options):
    return dict(estimated=False, indexes=[], locations=[], total_bytes=0, wal_bytes=0, temp_bytes=0,
                min_free_percent=options['min_free_percent'], free_margin_percent=options['free_margin_percent'])


def _data_directory(pf):
    """(path, source, why unknown) of the data directory on the database host."""
    if pf.options['data_directory']:
        return pf.options['data_directory'], 'data_directory option', None
    setting = catalog.visible_settings(pf.conn, ['data_directory']).get('data_directory')
    if setting:
        return setting['setting'], 'server (data_directory)', None
    return None, None, ('data_directory is only shown to superusers and members of pg_read_all_settings, and %s is '
                        'neither: set the data_directory option (role: pgindex_data_directory)'
                        % pf.session['current_user'])


def _tablespace_path(pf, name, location):
    """(path, source, why unknown) where files of tablespace ``name`` go on the database host."""
    overrides = pf.options['tablespace_paths'] or {}
    if overrides.get(name):
        return overrides[name], 'tablespace_paths option', None
    if location:
        return location, 'pg_tablespace_location', None
    # pg_default (and pg_global) live in the data directory; df the directory itself, which any user may stat.
    return _data_directory(pf)


def check_space(pf):
    """What the build will write and where: each index, the WAL, the sort's temporary files."""
    opts = pf.options
    indexes, locations, problems, notes = [], {}, [], []

    def add(path, source, why, what, field, size):
        key = path or 'unknown: %s' % what
        loc = locations.setdefault(key, dict(path=path, path_source=source, unknown_reason=why, what=[],
                                             index_bytes=0, wal_bytes=0, temp_bytes=0, required_bytes=0))
        if what not in loc['what']:
            loc['what'].append(what)
        loc[field] += size
        loc['required_bytes'] += size

    for target in pf.targets:
        spec = target.spec
        key = (spec.schema, spec.table)
        if not pf.builds.get(spec.qualified_name, 'indexes' not in opts['checks']) or not pf.indexable(key):
            continue
        storage = pf.storage(key)
        widths = []
        for column in spec.columns:
            widths.append(storage['widths'].get(column.name, EXPRESSION_WIDTH) if column.name else EXPRESSION_WIDTH)
        widths.extend(storage['widths'].get(name, VARLENA_WIDTH) for name in spec.include)
        size = estimate_index_bytes(storage['rows'], sum(widths), spec.method, _storage_param(spec, 'fillfactor'),
                                    storage['pages'], pf.block_size, _storage_param(spec, 'pages_per_range') or 128)
        space = pf.tablespace(target)
        entry = dict(index=spec.qualified_name, table=spec.qualified_table, method=spec.method,
                     estimated_rows=storage['rows'], rows_source=storage['rows_source'], key_width=sum(widths),
                     fillfactor=_storage_param(spec, 'fillfactor') or DEFAULT_FILLFACTOR.get(spec.method, 90),
                     estimated_bytes=size, tablespace=space['name'], tablespace_source=space['source'], path=None)
        indexes.append(entry)
        if spec.where:
            notes.append('%s is partial: its estimate counts every row' % spec.qualified_name)
        if not storage['analyzed']:
            notes.append('%s has never been analyzed, so the row estimate is rough: run ANALYZE %s'
                         % (spec.qualified_table, spec.qualified_table))
        if space['oid'] is None:  # reported by the index check; nothing will be built there
            continue
        path, source, why = _tablespace_path(pf, space['name'], space['location'])
        entry['path'] = path
        add(path, source, why, 'indexes in tablespace %s' % space['name'], 'index_bytes', size)

    total = sum(entry['estimated_bytes'] for entry in indexes)
    data_dir, source, why = _data_directory(pf)
    # Every page of a new index is written to the WAL (full-page images), in pg_wal of the data directory.
    add(data_dir + '/pg_wal' if data_dir else None, source, why, 'WAL (pg_wal)', 'wal_bytes', total)
    # A sort larger than maintenance_work_mem spills to temporary files (one build at a time).
    settings = catalog.visible_settings(pf.conn, ['maintenance_work_mem', 'temp_tablespaces'])
    work_mem = int(settings['maintenance_work_mem']['setting']) * 1024
    largest = max([entry['estimated_bytes'] for entry in indexes] or [0])
    temp = largest if largest > work_mem else 0
    if temp:
        temp_spaces = [name.strip().strip('"') for name in settings['temp_tablespaces']['setting'].split(',')
                       if name.strip()]
        database_space = catalog.database_tablespace(pf.conn)
        name = temp_spaces[0] if temp_spaces else database_space['name']
        location = catalog.index_tablespace(pf.conn, name)
        path, source, why = _tablespace_path(pf, name, location.get('location'))
        add(path, source, why, 'temporary sort files (tablespace %s)' % name, 'temp_bytes', temp)
    for loc in locations.values():
        if loc['path'] is None and loc['required_bytes'] > 0:
            notes.append('where %s go is unknown: %s' % (', '.join(loc['what']), loc['unknown_reason']))
    located = [loc for loc in locations.values() if loc['required_bytes'] > 0 or loc['path'] is not None]
    pf.space = dict(estimated=True, indexes=indexes, locations=located, total_bytes=total, wal_bytes=total, temp_bytes=temp,
                    maintenance_work_mem_bytes=work_mem, min_free_percent=opts['min_free_percent'],
                    free_margin_percent=opts['free_margin_percent'])
    if not indexes:
        text = 'nothing to build'
    else:
        biggest = max(indexes, key=lambda entry: entry['estimated_bytes'])
        text = ('%d index(es) to build: ~%s in all (largest %s, ~%s), plus ~%s of WAL%s; written to %s'
                % (len(indexes), human_bytes(total), biggest['index'], human_bytes(biggest['estimated_bytes']),
                   human_bytes(total), ' and ~%s of temporary sort files' % human_bytes(temp) if temp else '',
                   ', '.join('%s (%s)' % (loc['path'] or 'unknown path', ', '.join(loc['what'])) for loc in located)))
    if problems:
        return check('space', FAIL, '; '.join(problems + notes), **pf.space)
    if notes:
        return check('space', WARN, '%s. %s' % (text, '; '.join(notes)), **pf.space)
    return check('space', PASS, text, **pf.space)


# --------------------------------------------------------------------------- replication and archiving
def check_replication(pf):
    standbys = catalog.replication_standbys(pf.conn)
    slots = catalog.replication_slots(pf.conn)
    limit = pf.options['max_replication_lag_bytes']
    wal = (pf.space or {}).get('wal_bytes')
    data = dict(standbys=standbys, slots=slots, max_replication_lag_bytes=limit)
    problems = []
    for standby in standbys:
        if standby['replay_lag_bytes'] is not None and standby['replay_lag_bytes'] > limit:
            problems.append('standby %s (%s) is %s behind in replay (more than max_replication_lag %s): the build\'s '
                            'WAL adds to that; wait for it to catch up'
                            % (standby['application_name'], standby['client_addr'],
                               human_bytes(standby['replay_lag_bytes']), pf.options['max_replication_lag']))
    for slot in slots:
        if not slot['active']:
            problems.append('replication slot %s is inactive and retains %s of WAL in pg_wal; the build\'s WAL piles '
                            'up there too until its consumer comes back or the slot is dropped'
                            % (slot['slot_name'], human_bytes(slot['retained_bytes'])))
    described = ', '.join('%s (%s, %s, %s, replay lag %s)'
                          % (s['application_name'], s['client_addr'], s['state'], s['sync_state'],
                             human_bytes(s['replay_lag_bytes'])) for s in standbys)
    text = ('%d standby(s) connected: %s' % (len(standbys), described) if standbys
            else 'no standby connected (pg_stat_replication is empty)')
    if wal and standbys:
        text += '; they will receive and replay ~%s of WAL from the build' % human_bytes(wal)
    if problems:
        return check('replication', WARN, '%s. %s' % (text, '; '.join(problems)), **data)
    return check('replication', PASS, text + ('; %d replication slot(s), all active' % len(slots) if slots else ''),
                 **data)


def check_archiving(pf):
    settings = catalog.visible_settings(pf.conn, ['archive_mode'])
    mode = settings.get('archive_mode', {}).get('setting', 'unknown')
    stats = catalog.archiver_stats(pf.conn)
    data = dict(stats, archive_mode=mode)
    if mode == 'off':
        return check('archiving', PASS, 'WAL archiving is off (archive_mode = off)', **data)
    since = 'since %s' % stats['stats_reset'] if stats['stats_reset'] else 'since the statistics were reset'
    last = ('last archived %s at %s' % (stats['last_archived_wal'], stats['last_archived_time'])
            if stats['last_archived_wal'] else 'nothing archived %s' % since)
    if stats['failing']:
        return check('archiving', FAIL, 'WAL archiving is failing: the last attempt, for %s at %s, failed (%d failures '
                     '%s; %s). WAL that cannot be archived stays in pg_wal and the build would add its own: fix '
                     'archiving first (the server log says why archive_command fails)'
                     % (stats['last_failed_wal'], stats['last_failed_time'], stats['failed_count'], since, last),
                     **data)
    if stats['failed_count']:
        return check('archiving', WARN, 'WAL archiving works again (%s), but failed %d times %s (last for %s at %s)'
                     % (last, stats['failed_count'], since, stats['last_failed_wal'], stats['last_failed_time']),
                     **data)
    return check('archiving', PASS, 'WAL archiving works (archive_mode = %s): %s, %d archived and none failed %s'
                 % (mode, last, stats['archived_count'], since), **data)


CHECKS = dict(
    server=(check_version, check_recovery, check_session, check_session_settings),
    privileges=(check_privileges,),
    tables=(check_tables,),
    indexes=(check_indexes,),
    activity=(check_old_transactions, check_idle_in_transaction, check_prepared_transactions, check_locks,
              check_vacuum, check_index_builds),
    space=(check_space,),
    replication=(check_replication,),
    archiving=(check_archiving,),
)

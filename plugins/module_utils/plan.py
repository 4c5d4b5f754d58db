# -*- coding: utf-8 -*-
# Copyright: ChefCloud Platform Engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Desired index + observed catalog state -> an ordered plan of steps, each with its exact SQL.

Planning reads nothing and writes nothing: it is a pure function of what ``observe`` found, so
check mode can return the plan and a real run can execute it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.chefcloud.pgindex.plugins.module_utils.connection import sql
from ansible_collections.chefcloud.pgindex.plugins.module_utils.errors import DriftError, PgIndexError
from ansible_collections.chefcloud.pgindex.plugins.module_utils.index_spec import (
    definition_without_name, replacement_name)

# Actions reported to the user.
NONE = 'none'
CREATED = 'created'
REBUILT = 'rebuilt'
REPLACED = 'replaced'
DROPPED = 'dropped'


class Step(object):
    """One statement of a plan.

    ``kind`` is 'create', 'drop', 'rename' or 'attach'; ``index`` the (schema, name) it works on.
    A failed concurrent build leaves an INVALID index behind: such a step carries the ``cleanup``
    statement that drops it.
    """

    def __init__(self, kind, statement, description, index=None, cleanup=None):
        self.kind = kind
        self.statement = statement
        self.description = description
        self.index = index
        self.cleanup = cleanup


class Plan(object):
    def __init__(self, action, steps=(), before=None, after=None, warnings=(), partitions=()):
        self.action = action
        self.steps = list(steps)
        self.before = before  # pg_get_indexdef of the index as it is, or None
        self.after = after    # pg_get_indexdef of the index as it will be, or None
        self.warnings = list(warnings)
        self.partitions = list(partitions)  # per partition: {partition, index, action}

    @property
    def changes(self):
        return bool(self.steps)


def create_step(spec, name=None, only=False, concurrently=True, description=None):
    name = name or spec.name
    return Step('create', spec.create_statement(concurrently=concurrently, only=only, name=name),
                description or 'create index %s.%s' % (spec.schema, name), index=(spec.schema, name),
                cleanup=spec.drop_statement(name=name) if concurrently else None)


def drop_step(spec, name=None, concurrently=True, description=None):
    name = name or spec.name
    return Step('drop', spec.drop_statement(name=name, concurrently=concurrently),
                description or 'drop index %s.%s' % (spec.schema, name), index=(spec.schema, name))


def _refuse_if_being_built(qualified_name, builds):
    if builds:
        who = ', '.join('pid %(pid)s (%(user)s, %(application_name)s, %(phase)s for %(running_s)ss)' % b
                        for b in builds)
        raise PgIndexError(
            'index %s is being built right now by another session: %s. It is INVALID until that build '
            'finishes; it will not be dropped from under it. Wait for the build to end (see '
            'pg_stat_progress_create_index), or set on_build_in_progress=wait.' % (qualified_name, who),
            builders=builds)


def _refuse_other_table(spec, observed):
    if spec.table is not None and observed.table != spec.table:
        raise DriftError(
            'index %s exists on table %s, not on %s. A name match is not a definition match: '
            'rename one of them or fix the change set (an index on another table is never replaced or dropped).'
            % (spec.qualified_name, observed.qualified_table, spec.qualified_table),
            existing_definition=observed.definition)


def drift(spec, observed, desired_definition):
    """Differences between the existing valid index and the desired one, as readable strings."""
    found = []
    if observed.definition != desired_definition:
        found.append('definition')
    if spec.tablespace and observed.tablespace != spec.tablespace:
        found.append('tablespace %s, desired %s' % (observed.tablespace, spec.tablespace))
    return found


def plan_present(spec, observed, desired_definition, builds=(), on_drift='fail', on_invalid='rebuild',
                 replacement=None, replacement_builds=(), quoted_name=None):
    """Plan for state=present.

    - missing: create it concurrently;
    - INVALID (a failed earlier build): drop it concurrently and build it again (on_invalid=rebuild),
      unless another session is building it right now;
    - valid and identical: nothing;
    - valid with another definition or tablespace (drift): fail showing both (on_drift=fail), warn
      (ignore), or build the desired index concurrently under a temporary name, drop the old one
      concurrently and rename (replace): the table is never without the index;
    - on another table: DriftError, whatever on_drift says.
    """
    if observed is None:
        return Plan(CREATED, [create_step(spec)], before=None, after=desired_definition)
    _refuse_other_table(spec, observed)
    if not observed.valid:
        if on_invalid == 'fail':
            raise PgIndexError(
                'index %s exists but is INVALID (left by a failed or interrupted concurrent build). '
                'on_invalid=fail: drop it with DROP INDEX CONCURRENTLY, or run with on_invalid=rebuild.'
                % spec.qualified_name, existing_definition=observed.definition)
        _refuse_if_being_built(spec.qualified_name, builds)
        return Plan(REBUILT, [drop_step(spec, description='drop invalid index %s' % spec.qualified_name),
                              create_step(spec)],
                    before=observed.definition, after=desired_definition,
                    warnings=['index %s was INVALID (left by a failed or interrupted build): it is dropped '
                              'and built again' % spec.qualified_name])
    differences = drift(spec, observed, desired_definition)
    if not differences:
        return Plan(NONE, [], before=observed.definition, after=desired_definition)
    summary = ('index %s exists with another %s.\n  existing: %s%s\n  desired:  %s%s'
               % (spec.qualified_name, ' and '.join(d.split(' ')[0] for d in differences), observed.definition,
                  ' (tablespace %s)' % observed.tablespace if spec.tablespace else '', desired_definition,
                  ' (tablespace %s)' % spec.tablespace if spec.tablespace else ''))
    if on_drift == 'ignore':
        return Plan(NONE, [], before=observed.definition, after=observed.definition,
                    warnings=[summary + '\non_drift=ignore: left as it is.'])
    if on_drift == 'fail':
        raise DriftError(summary + '\nA name match is not a definition match: rename the new index, drop the old '
                         'one first, or run with on_drift=replace.',
                         existing_definition=observed.definition, desired_definition=desired_definition)
    return _plan_replace(spec, observed, desired_definition, replacement, replacement_builds, quoted_name, summary)


def _plan_replace(spec, observed, desired_definition, replacement, replacement_builds, quoted_name, summary):
    temp = replacement_name(spec.name)
    steps = []
    resumed = False
    if replacement is not None:
        same_definition = definition_without_name(replacement.definition, replacement.quoted_name) \
            == definition_without_name(desired_definition, quoted_name)
        same = all((replacement.valid, replacement.table == spec.table, same_definition,
                    not spec.tablespace or replacement.tablespace == spec.tablespace))
        if same:
            resumed = True
        else:
            _refuse_if_being_built('%s.%s' % (spec.schema, temp), replacement_builds)
            steps.append(drop_step(spec, name=temp, description='drop leftover replacement index %s.%s'
                                   % (spec.schema, temp)))
    if not resumed:
        steps.append(create_step(spec, name=temp, description='create replacement index %s.%s' % (spec.schema, temp)))
    steps.append(drop_step(spec, description='drop drifted index %s' % spec.qualified_name))
    steps.append(Step('rename', sql.SQL('ALTER INDEX {} RENAME TO {}').format(
        spec.index_identifier(temp), sql.Identifier(spec.name)),
        'rename %s.%s to %s' % (spec.schema, temp, spec.name), index=(spec.schema, temp)))
    return Plan(REPLACED, steps, before=observed.definition, after=desired_definition,
                warnings=[summary + '\non_drift=replace: the desired index is built concurrently as %s, then the '
                          'old one is dropped concurrently and the new one renamed.' % temp])


def plan_absent(spec, observed, builds=()):
    """Plan for state=absent: drop the index if it exists (and is on the given table).

    Concurrently, except for an index on a partitioned table, which PostgreSQL can only drop with a
    plain DROP INDEX (a short ACCESS EXCLUSIVE lock on the table and its partitions).
    """
    if observed is None:
        return Plan(NONE, [], before=None, after=None)
    _refuse_other_table(spec, observed)
    _refuse_if_being_built(spec.qualified_name, builds)
    warnings = []
    if observed.partitioned:
        warnings.append('index %s is on a partitioned table: PostgreSQL cannot drop it concurrently, so it is '
                        'dropped with DROP INDEX (ACCESS EXCLUSIVE lock on the table and its partitions, bounded '
                        'by lock_timeout and retried)' % spec.qualified_name)
    return Plan(DROPPED, [drop_step(spec, concurrently=not observed.partitioned)], before=observed.definition,
                after=None, warnings=warnings)


RESUMED = 'resumed'


class PartitionState(object):
    """One partition below a partitioned table, as observed: its index (ours by name, or attached)."""

    def __init__(self, info, spec, index_name, existing, attached, desired_definition, builds=()):
        self.info = info                    # from catalog.partitions
        self.spec = spec                    # the index definition on this partition
        self.index_name = index_name        # the name our index has there
        self.existing = existing            # catalog.get_index of that name, or None
        self.attached = attached            # (schema, name, valid) attached to the parent index, or None
        self.desired_definition = desired_definition
        self.builds = builds

    @property
    def qualified(self):
        return '%s.%s' % (self.info['schema'], self.info['name'])


def plan_partitioned(spec, observed, desired_definition, parts, parent_index_of, on_drift='fail',
                     on_invalid='rebuild'):
    """Plan for state=present on a partitioned table, where CREATE INDEX CONCURRENTLY is refused.

    The safe way: ``CREATE INDEX ... ON ONLY parent`` (an empty, INVALID parent index, instant), then
    for each partition ``CREATE INDEX CONCURRENTLY`` and ``ALTER INDEX parent ATTACH PARTITION``;
    sub-partitioned children get their own ``ON ONLY`` index, attached to their parent's. The parent
    index becomes valid when the last partition is attached. Resumable: a rerun after a failure
    skips the partitions already attached and rebuilds INVALID leftovers.
    ``parent_index_of(partition_state)`` gives the (schema, name) of the index to attach to.
    """
    steps, report, warnings = [], [], []
    if observed is None:
        action = CREATED
        steps.append(create_step(spec, only=True, concurrently=False,
                                 description='create index %s on only the partitioned table' % spec.qualified_name))
    else:
        _refuse_other_table(spec, observed)
        if observed.definition != desired_definition:
            if on_drift == 'ignore':
                return Plan(NONE, [], before=observed.definition, after=observed.definition, warnings=[
                    'index %s exists with another definition (existing: %s, desired: %s); on_drift=ignore'
                    % (spec.qualified_name, observed.definition, desired_definition)])
            raise DriftError(
                'index %s exists with another definition.\n  existing: %s\n  desired:  %s\n'
                'on a partitioned table only on_drift=fail or ignore are supported: drop the old index first.'
                % (spec.qualified_name, observed.definition, desired_definition),
                existing_definition=observed.definition, desired_definition=desired_definition)
        if observed.valid:
            return Plan(NONE, [], before=observed.definition, after=desired_definition,
                        partitions=[dict(partition=p.qualified, index='%s.%s' % (p.info['schema'], p.index_name),
                                         action=NONE) for p in parts])
        if on_invalid == 'fail':
            raise PgIndexError('index %s on a partitioned table is INVALID: some partitions have no attached index '
                               'yet. on_invalid=fail: run with on_invalid=rebuild to finish them.' % spec.qualified_name)
        action = RESUMED
        warnings.append('index %s is INVALID (an earlier run did not finish every partition): the remaining '
                        'partitions are done now' % spec.qualified_name)
    for part in parts:
        child_spec, schema = part.spec, part.info['schema']
        entry = dict(partition=part.qualified, index='%s.%s' % (schema, part.index_name), action=NONE)
        report.append(entry)
        if part.attached is not None and (part.attached[2] or part.info['relkind'] == 'p'):
            continue
        existing = part.existing
        if existing is not None and existing.table != part.info['name']:
            raise DriftError('index %s.%s (wanted on partition %s) exists on table %s; rename it'
                             % (schema, part.index_name, part.qualified, existing.qualified_table))
        same = existing is not None and definition_without_name(existing.definition, existing.quoted_name) == \
            definition_without_name(part.desired_definition, existing.quoted_name)
        if existing is not None and not same and existing.valid:
            raise DriftError('index %s.%s on partition %s has another definition.\n  existing: %s\n  desired:  %s'
                             % (schema, part.index_name, part.qualified, existing.definition, part.desired_definition))
        if part.info['relkind'] == 'p':
            if existing is None:
                steps.append(create_step(child_spec, only=True, concurrently=False,
                                         description='create index %s.%s on only the partitioned partition %s'
                                         % (schema, part.index_name, part.qualified)))
                entry['action'] = CREATED
        elif existing is None or not existing.valid:
            if existing is not None:
                _refuse_if_being_built('%s.%s' % (schema, part.index_name), part.builds)
                steps.append(drop_step(child_spec, description='drop invalid index %s.%s' % (schema, part.index_name)))
            steps.append(create_step(child_spec, description='create index %s.%s on partition %s'
                                     % (schema, part.index_name, part.qualified)))
            entry['action'] = REBUILT if existing is not None else CREATED
        else:
            entry['action'] = 'attached'
        if part.attached is None:
            parent = parent_index_of(part)
            steps.append(Step('attach', sql.SQL('ALTER INDEX {} ATTACH PARTITION {}').format(
                sql.Identifier(*parent), sql.Identifier(schema, part.index_name)),
                'attach index %s.%s to %s.%s' % (schema, part.index_name, parent[0], parent[1]),
                index=(schema, part.index_name)))
    return Plan(action, steps, before=observed.definition if observed else None, after=desired_definition,
                warnings=warnings, partitions=report)

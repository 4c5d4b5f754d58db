# -*- coding: utf-8 -*-
# Copyright: ChefCloud Platform Engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Desired index + observed catalog state -> an ordered plan of steps, each with its exact SQL.

Planning reads nothing and writes nothing: it is a pure function of what ``observe`` found, so
check mode can return the plan and a real run can execute it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.chefcloud.pgindex.plugins.module_utils.errors import DriftError, PgIndexError

# Actions reported to the user.
NONE = 'none'
CREATED = 'created'
REBUILT = 'rebuilt'
DROPPED = 'dropped'


class Step(object):
    """One statement of a plan. ``kind`` is 'create' or 'drop'."""

    def __init__(self, kind, statement, description):
        self.kind = kind
        self.statement = statement
        self.description = description


class Plan(object):
    def __init__(self, action, steps=(), before=None, after=None, warnings=()):
        self.action = action
        self.steps = list(steps)
        self.before = before  # pg_get_indexdef of the index as it is, or None
        self.after = after    # pg_get_indexdef of the index as it will be, or None
        self.warnings = list(warnings)

    @property
    def changes(self):
        return bool(self.steps)


def _refuse_if_being_built(spec, observed, builds):
    if builds:
        who = ', '.join('pid %(pid)s (%(user)s, %(application_name)s, %(phase)s for %(running_s)ss)' % b
                        for b in builds)
        raise PgIndexError(
            'index %s is being built right now by another session: %s. It is INVALID until that build '
            'finishes; it will not be dropped from under it. Wait for the build to end (see '
            'pg_stat_progress_create_index) and run again.' % (spec.qualified_name, who),
            builders=builds)


def _refuse_other_table(spec, observed):
    if spec.table is not None and observed.table != spec.table:
        raise DriftError(
            'index %s exists on table %s, not on %s. A name match is not a definition match: '
            'rename one of them or fix the change set.'
            % (spec.qualified_name, observed.qualified_table, spec.qualified_table),
            existing_definition=observed.definition)


def plan_present(spec, observed, desired_definition, builds=()):
    """Plan for state=present.

    - missing: create it concurrently;
    - present, INVALID (a failed earlier build): drop it concurrently and build it again, unless
      another session is building it right now;
    - present, valid, same definition: nothing;
    - present with another definition or on another table: DriftError showing both definitions.
    """
    create = Step('create', spec.create_statement(concurrently=True), 'create index %s' % spec.qualified_name)
    if observed is None:
        return Plan(CREATED, [create], before=None, after=desired_definition)
    _refuse_other_table(spec, observed)
    if not observed.valid:
        _refuse_if_being_built(spec, observed, builds)
        drop = Step('drop', spec.drop_statement(), 'drop invalid index %s' % spec.qualified_name)
        return Plan(REBUILT, [drop, create], before=observed.definition, after=desired_definition,
                    warnings=['index %s was INVALID (left by a failed or interrupted build): it is dropped '
                              'and built again' % spec.qualified_name])
    if observed.definition != desired_definition:
        raise DriftError(
            'index %s exists with another definition.\n  existing: %s\n  desired:  %s\n'
            'A name match is not a definition match: rename the new index, or drop the old one first.'
            % (spec.qualified_name, observed.definition, desired_definition),
            existing_definition=observed.definition, desired_definition=desired_definition)
    return Plan(NONE, [], before=observed.definition, after=desired_definition)


def plan_absent(spec, observed, builds=()):
    """Plan for state=absent: drop the index concurrently if it exists (and is on the given table)."""
    if observed is None:
        return Plan(NONE, [], before=None, after=None)
    _refuse_other_table(spec, observed)
    _refuse_if_being_built(spec, observed, builds)
    drop = Step('drop', spec.drop_statement(), 'drop index %s' % spec.qualified_name)
    return Plan(DROPPED, [drop], before=observed.definition, after=None)

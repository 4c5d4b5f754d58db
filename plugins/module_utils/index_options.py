# -*- coding: utf-8 -*-
# Copyright: ChefCloud Platform Engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The options of one index build, shared by pg_concurrent_index (one index) and pg_index_set (a
change set): their argument spec, and how parameters split into definition, policies and session
settings for ensure_index."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

INDEX_ARGUMENT_SPEC = dict(
    name=dict(type='str', required=True, aliases=['index']),
    table=dict(type='str'),
    schema=dict(type='str', default='public'),
    columns=dict(type='list', elements='raw', aliases=['column']),
    method=dict(type='str', default='btree', choices=['btree', 'hash', 'gin', 'gist', 'brin', 'spgist']),
    unique=dict(type='bool', default=False),
    nulls_not_distinct=dict(type='bool', default=False),
    include=dict(type='list', elements='str'),
    where=dict(type='str'),
    tablespace=dict(type='str'),
    storage_params=dict(type='dict'),
    state=dict(type='str', default='present', choices=['present', 'absent']),
    on_drift=dict(type='str', default='fail', choices=['fail', 'replace', 'ignore']),
    on_invalid=dict(type='str', default='rebuild', choices=['rebuild', 'fail']),
    on_build_in_progress=dict(type='str', default='fail', choices=['fail', 'wait']),
    build_wait_timeout=dict(type='int', default=600),
    lock_timeout=dict(type='str', default='5s'),
    snapshot_wait_timeout=dict(type='str', default='30min'),
    retries=dict(type='int', default=3),
    retry_delay=dict(type='float', default=2.0),
    statement_timeout=dict(type='str', default='0'),
    maintenance_work_mem=dict(type='str'),
    max_parallel_maintenance_workers=dict(type='int'),
)

INDEX_REQUIRED_IF = [('state', 'present', ('table', 'columns'))]

POLICY_OPTIONS = ('on_drift', 'on_invalid', 'on_build_in_progress', 'build_wait_timeout', 'lock_timeout',
                  'snapshot_wait_timeout', 'retries', 'retry_delay')

# statement_timeout first: a tiny role or database default must not cancel the other settings.
SESSION_OPTIONS = ('statement_timeout', 'maintenance_work_mem', 'max_parallel_maintenance_workers')


def split_params(params):
    """(session settings, policy options) of one index's parameters."""
    settings = dict((name, params.get(name)) for name in SESSION_OPTIONS)
    options = dict((name, params.get(name)) for name in POLICY_OPTIONS)
    return settings, options

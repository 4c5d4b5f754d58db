# -*- coding: utf-8 -*-
# Copyright: ChefCloud Platform Engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which indexes may build at the same time.

Indexes on one table build one after another (two concurrent builds on a table wait for each
other, and both lock it); indexes on different tables may build together, at most
``parallelism`` at a time. Since PostgreSQL 14 a concurrent build of a plain index (no expression,
no predicate) no longer waits for the other concurrent builds, so parallel builds really overlap.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

PARALLEL_CIC_SINCE = 140000


def default_parallelism(server_version_num):
    """2 concurrent builds on PostgreSQL 14+, 1 before (where concurrent builds wait for each other)."""
    return 2 if server_version_num >= PARALLEL_CIC_SINCE else 1


def build_waves(indexes, parallelism, default_schema='public'):
    """Split the change set into waves: lists of at most ``parallelism`` indexes on distinct tables.

    The n-th index of each table goes in the n-th round, so a table's indexes keep their change-set
    order; each round is cut into waves of ``parallelism``. Waves run one after the other.
    """
    parallelism = max(1, int(parallelism))
    lanes, order = {}, []
    for index in indexes:
        key = (index.get('schema') or default_schema, index.get('table'))
        if key not in lanes:
            lanes[key] = []
            order.append(key)
        lanes[key].append(index)
    waves = []
    depth = max([len(lane) for lane in lanes.values()] or [0])
    for round_number in range(depth):
        batch = [lanes[key][round_number] for key in order if len(lanes[key]) > round_number]
        waves.extend(batch[i:i + parallelism] for i in range(0, len(batch), parallelism))
    return waves

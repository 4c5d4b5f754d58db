# -*- coding: utf-8 -*-
# Copyright: ChefCloud Platform Engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The space model of the preflight: how many rows a table holds and how large a freshly built index of
them is (btree, hash, brin and the others), from catalog statistics, without reading the table.
Pure functions; check_space (preflight.py) applies them to the change set."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math

# Index size estimate: page header (24 bytes), special space, index tuple header (8 bytes),
# line pointer (4 bytes), MAXALIGN 8. Default leaf fillfactor per access method.
DEFAULT_FILLFACTOR = {'btree': 90, 'hash': 75, 'gist': 90, 'spgist': 80, 'gin': 100, 'brin': 100}
NONLEAF_FILL = 0.70
EXPRESSION_WIDTH = 32      # what the planner assumes for a variable-width value without statistics
VARLENA_WIDTH = 32


def column_width(column):
    """Average stored width of a column: pg_stats, else the type's fixed length, else 32."""
    if column.get('avg_width') is not None:
        return column['avg_width']
    return column['typlen'] if column.get('typlen') and column['typlen'] > 0 else VARLENA_WIDTH


def estimate_rows(leaves, tuple_width, block_size=8192):
    """(rows, source): the planner's way, reltuples/relpages scaled to the current size of each heap;
    without statistics (never vacuumed or analyzed), the size divided by the row width."""
    rows, sources = 0.0, set()
    for leaf in leaves:
        if leaf['relpages'] > 0 and leaf['reltuples'] >= 0:
            rows += leaf['reltuples'] / leaf['relpages'] * leaf['pages']
            sources.add('statistics')
        elif leaf['pages'] > 0:
            rows += leaf['pages'] * (block_size - 24) / float(tuple_width + 24 + 4)
            sources.add('table size / row width (never analyzed)')
    return int(round(rows)), ' and '.join(sorted(sources)) or 'empty'


def _maxalign(size):
    return (int(size) + 7) // 8 * 8


def estimate_index_bytes(rows, key_width, method='btree', fillfactor=None, heap_pages=0, block_size=8192,
                         pages_per_range=128):
    """Size of a freshly built index: leaf pages filled to ``fillfactor``, upper levels, metapage."""
    method = method or 'btree'
    if method == 'brin':
        ranges = int(math.ceil(heap_pages / float(pages_per_range))) or 1
        usable = block_size - 24 - 8
        revmap = int(math.ceil(ranges / float(usable // 6)))
        return (2 + revmap + int(math.ceil(ranges * (_maxalign(8 + 2 * key_width) + 4) / float(usable)))) * block_size
    fill = (fillfactor or DEFAULT_FILLFACTOR.get(method, 90)) / 100.0
    usable = block_size - 24 - 16
    if method == 'hash':
        # 4-byte hash codes; the build allocates a power of two of bucket pages, plus metapage and bitmap.
        per_bucket = max(1, int(usable * fill // (_maxalign(8 + 4) + 4)))
        buckets = 2 ** int(math.ceil(math.log(max(2.0, math.ceil(rows / float(per_bucket))), 2)))
        return (buckets + 2) * block_size
    item = _maxalign(8 + key_width) + 4
    per_leaf = max(1, int(usable * fill // item))
    per_upper = max(2, int(usable * NONLEAF_FILL // item))
    level = max(1, int(math.ceil(rows / float(per_leaf))))
    pages = 1 + level
    while level > 1:
        level = int(math.ceil(level / float(per_upper)))
        pages += level
    return pages * block_size


def _storage_param(spec, name):
    for key, value in getattr(spec, 'storage_params', None) or []:
        if key == name:
            return int(value)
    return None

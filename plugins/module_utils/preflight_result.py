# -*- coding: utf-8 -*-
# Copyright: ChefCloud Platform Engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The shape of a preflight check result and the helpers every check shares: the statuses (pass, warn,
fail), ``check`` (one result: name, status, message, data), ``worst`` and ``human_bytes``."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

PASS, WARN, FAIL = 'pass', 'warn', 'fail'
SEVERITY = {PASS: 0, WARN: 1, FAIL: 2}


def check(name, status, message, **data):
    """One check result."""
    return dict(name=name, status=status, message=message, data=data)


def worst(statuses):
    return max(statuses, key=SEVERITY.get) if statuses else PASS


def human_bytes(value):
    """1536 -> '1.5 KiB' (binary units, as df -h prints them)."""
    if value is None:
        return 'unknown'
    size = float(value)
    sign = '-' if size < 0 else ''
    size = abs(size)
    for unit in ('B', 'KiB', 'MiB', 'GiB', 'TiB'):
        if size < 1024 or unit == 'TiB':
            return '%s%s %s' % (sign, ('%d' % size) if unit == 'B' else ('%.1f' % size), unit)
        size /= 1024.0
    return '%s%.1f PiB' % (sign, size)  # pragma: no cover

# -*- coding: utf-8 -*-
# Copyright: ChefCloud Platform Engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How many builds run at once and how many parallel workers each gets, sized to the database host.

The rule (documented in README.md, variables pgindex_db_cpus, pgindex_cpu_share, pgindex_off_peak):

- the builds may keep ``budget`` processes busy on the database host: ``round(cpus * cpu_share)``, at
  least 2 on a host with 2 CPUs or more (the runbook's single build with the server's default 2 parallel
  workers already takes 3), at least 1; every CPU with ``off_peak``;
- by default a build gets a parallel worker before a second lane starts: ``lanes = budget // 2``
  (at least 1). Workers only help the first table scan and sort, about half of a concurrent build;
  the validation phases run in the leader alone, so the sustained load is about one process per lane
  - half the budget - and the application keeps the rest (on 2 CPUs and 1M rows per table: one lane
  with one worker builds the six runbook indexes in 0.94x the runbook's time);
- off peak, lanes come first: ``lanes = budget``, so every CPU stays busy through the serial
  validation phases too (2 lanes without workers: 0.72x the runbook on the same machine);
- at most one lane per table, and 1 before PostgreSQL 14 (concurrent builds waited for each other);
- each build gets the processes left: ``workers = budget // lanes - 1``, never more than the
  server's ``max_parallel_workers // lanes`` nor its ``max_worker_processes - 1``;
- when the CPU count is unknown (0: not read and not given), the former defaults: 2 lanes on 14+,
  1 before, and the server's own max_parallel_maintenance_workers.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

PARALLEL_CIC_SINCE = 140000
DEFAULT_CPU_SHARE = 0.5


def size(cpus, tables, server_version_num, max_parallel_workers=8, max_worker_processes=8, cpu_share=DEFAULT_CPU_SHARE,
         off_peak=False):
    """dict(lanes, workers, budget, cpus, rule): ``workers`` is None when the server's setting stays."""
    tables = max(1, int(tables or 1))
    parallel_lanes = server_version_num >= PARALLEL_CIC_SINCE
    if not cpus or cpus <= 0:
        lanes = min(tables, 2 if parallel_lanes else 1)
        return dict(lanes=lanes, workers=None, budget=None, cpus=None,
                    rule='CPU count of the database host unknown: %d lane(s), the server\'s parallel workers' % lanes)
    share = 1.0 if off_peak else float(cpu_share)
    if not 0 < share <= 1:
        raise ValueError('cpu_share must be above 0 and at most 1, got %r' % (cpu_share,))
    budget = max(1, int(round(cpus * share)))
    if cpus >= 2:
        budget = max(2, budget)
    if not parallel_lanes:
        lanes = 1
    elif off_peak:
        lanes = min(tables, budget)
    else:
        lanes = min(tables, max(1, budget // 2))
    workers = budget // lanes - 1
    workers = min(workers, max(0, int(max_parallel_workers)) // lanes, max(0, int(max_worker_processes) - 1))
    workers = max(0, workers)
    rule = ('%s: %d of %d CPU(s) of the database host for the builds -> %d lane(s) x (1 + %d parallel worker(s))'
            % ('off-peak (whole machine)' if off_peak else 'cpu_share %.2f' % share, budget, cpus, lanes, workers))
    return dict(lanes=lanes, workers=workers, budget=budget, cpus=int(cpus), rule=rule)

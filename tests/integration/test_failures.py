"""Every failure tells the truth (issue 11): playbook runs against real servers that fail for real,
asserting the exit code, the play's last message and the report."""
import json
import re

import pytest

from helpers.playbooks import SIX, playbook, recap


def changeset(tmp_path, indexes, name='ft'):
    """A change set file with ``indexes`` (YAML text of the list items)."""
    path = tmp_path / ('%s.yml' % name)
    path.write_text('pgindex_changeset_name: %s\npgindex_indexes:\n%s' % (name, indexes))
    return path


def deploy(db, tmp_path, path, *args, entry='deploy_indexes'):
    return playbook(db, 'playbooks/%s.yml' % entry, '-i', 'inventories/local', '-e', 'pgindex_changeset_file=%s' % path,
                    '-e', 'pgindex_report_dir=%s' % (tmp_path / 'reports'), *args)


def last_message(out):
    """The msg of the last failed task (the play's final word)."""
    failures = re.findall(r'^fatal: .*?\n(?:.*\n)*?(?=\S|\Z)', out, re.M)
    assert failures, out
    return ' '.join(failures[-1].split())


def report(tmp_path, name='ft'):
    path = tmp_path / 'reports' / ('%s.local-db.json' % name)
    return json.loads(path.read_text()) if path.exists() else None


UNIQUE_ON_DUPLICATES = '''  - name: idx_fr_overview_org_period
    table: franchise_overview
    columns: [org_id, period]
  - name: idx_payments_status_unique
    table: payments
    columns: [status]
    unique: true
'''


def test_unique_on_duplicates_reports_and_fails_with_the_cause(db, tmp_path):
    path = changeset(tmp_path, UNIQUE_ON_DUPLICATES)
    rc, out = deploy(db, tmp_path, path)
    assert rc != 0, out
    last = last_message(out)
    assert 'could not create unique index "idx_payments_status_unique"' in last, last
    assert 'duplicate keys' in last
    assert 'Traceback' not in out and "has no attribute" not in out
    data = report(tmp_path)
    assert data is not None, out
    assert data['ok'] is False and data['build']['failed'] is True
    rows = {r['name']: r for r in data['build']['indexes']}
    assert rows['idx_payments_status_unique']['failed'] is True
    assert rows['idx_payments_status_unique']['error'].startswith('UniqueViolation: could not create unique index')
    assert isinstance(rows['idx_payments_status_unique']['duration_s'], float)
    assert db.index('idx_payments_status_unique') is None

"""deploy_indexes.yml run the way AWX / Automation Controller runs it: through ansible-runner, with a private data
dir laid out as the controller lays it out (env/extravars, env/envvars, inventory/, project/), the AWX job's
extra variables included. Asserts the job events, the artifacts, the run record, and that a failure surfaces in
the runner's status."""
import json
import os
import sys
from pathlib import Path

import ansible_runner
import pytest
import yaml

from helpers.playbooks import SIX

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
AWX_VARS = dict(awx_job_id=4242, awx_job_template_name='Deploy indexes', awx_user_name='carol.dba',
                awx_user_email='carol@example.com', awx_job_launch_type='workflow', awx_workflow_job_id=77,
                awx_workflow_job_name='Deploy with approval', awx_workflow_job_template_name='Deploy with approval')


@pytest.fixture
def clean_environment(monkeypatch):
    """The runner passes its own environment on: only env/envvars may choose the server and Ansible's settings."""
    for name in list(os.environ):
        if name.startswith(('PG', 'ANSIBLE_')):
            monkeypatch.delenv(name)


def private_data_dir(tmp_path, db, extravars):
    pdd = tmp_path / 'runner'
    (pdd / 'env').mkdir(parents=True)
    (pdd / 'inventory').mkdir()
    (pdd / 'env' / 'extravars').write_text(yaml.safe_dump(extravars))
    # the execution environment's PATH: its ansible-playbook first
    path = '%s:%s' % (BIN, os.environ.get('PATH', '/usr/bin:/bin'))
    (pdd / 'env' / 'envvars').write_text(yaml.safe_dump(dict(db.env, ANSIBLE_NOCOLOR='1', PATH=path)))
    (pdd / 'inventory' / 'hosts.yml').write_text((ROOT / 'inventories' / 'local' / 'hosts.yml').read_text())
    (pdd / 'project').symlink_to(ROOT)      # the project checkout (the controller syncs it there)
    return pdd


def run(pdd, ident):
    return ansible_runner.run(private_data_dir=str(pdd), playbook='playbooks/deploy_indexes.yml', ident=ident,
                              quiet=True)


def test_deploy_through_ansible_runner_succeeds_with_events_artifacts_and_the_awx_record(db, tmp_path, clean_environment):
    reports = tmp_path / 'reports'
    pdd = private_data_dir(tmp_path, db, dict(AWX_VARS, pgindex_report_dir=str(reports),
                                              pgindex_changeset_file='../changesets/001_franchise_indexes.yml',
                                              pgindex_progress_interval=1))
    r = run(pdd, 'deploy-ok')
    stdout = r.stdout.read()
    assert (r.status, r.rc) == ('successful', 0), stdout
    events = list(r.events)
    kinds = set(e['event'] for e in events)
    assert {'playbook_on_start', 'playbook_on_task_start', 'runner_on_ok', 'playbook_on_stats'} <= kinds
    assert 'runner_on_failed' not in kinds
    (stats,) = [e for e in events if e['event'] == 'playbook_on_stats']
    assert stats['event_data']['failures'] == {} and stats['event_data']['changed'].get('local-db', 0) >= 1
    tasks = [e['event_data'].get('task') for e in events if e['event'] == 'runner_on_ok']
    assert 'Assemble the report' in tasks and 'Show the report' in tasks
    artifacts = pdd / 'artifacts' / 'deploy-ok'
    assert (artifacts / 'rc').read_text().strip() == '0' and (artifacts / 'status').read_text().strip() == 'successful'
    assert (artifacts / 'stdout').is_file() and len(list((artifacts / 'job_events').glob('*.json'))) == len(events)
    assert all(db.index(name)[0] is True for name in SIX)
    report = json.loads((reports / '001_franchise_indexes.local-db.latest.json').read_text())
    assert report['operator'] == dict(name='carol.dba', email='carol@example.com', source='awx (awx_user_name)')
    assert report['awx']['job_id'] == 4242 and report['awx']['workflow_job_id'] == 77
    assert report['sign_off']['reviewed_and_approved_by']['status'] == 'approved'
    assert 'workflow_approvals/?workflow_job=77' in report['sign_off']['reviewed_and_approved_by']['detail']
    markdown = (reports / '001_franchise_indexes.local-db.latest.md').read_text()
    assert 'by **carol.dba** (awx (awx_user_name))' in markdown and 'workflow job 77 (Deploy with approval)' in markdown


def test_a_failure_surfaces_in_the_runner_status(db, tmp_path, clean_environment):
    db.query('CREATE INDEX idx_inv_batches_org_sku ON inventory_batches (sku, org_id)')   # drift: on_drift=fail
    pdd = private_data_dir(tmp_path, db, dict(AWX_VARS, pgindex_report_dir=str(tmp_path / 'reports'),
                                              pgindex_changeset_file='../changesets/001_franchise_indexes.yml'))
    r = run(pdd, 'deploy-failed')
    stdout = r.stdout.read()
    assert r.status == 'failed' and r.rc != 0, stdout
    failed = [e for e in r.events if e['event'] == 'runner_on_failed' and not e['event_data'].get('ignore_errors')]
    assert failed, stdout
    messages = ' '.join(str(e['event_data']['res'].get('msg')) for e in failed)
    assert 'idx_inv_batches_org_sku' in messages and 'Traceback' not in stdout
    artifacts = pdd / 'artifacts' / 'deploy-failed'
    assert (artifacts / 'status').read_text().strip() == 'failed' and (artifacts / 'rc').read_text().strip() != '0'
    (stats,) = [e for e in r.events if e['event'] == 'playbook_on_stats']
    assert stats['event_data']['failures'].get('local-db')

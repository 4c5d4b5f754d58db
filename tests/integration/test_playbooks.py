"""The playbooks as users run them: ansible-playbook against a real server, through the libpq environment."""
import os
import re
import subprocess

import pytest

from helpers.playbooks import BIN, ROOT, SIX, playbook, recap, six_state


@pytest.mark.smoke
def test_deploy_creates_the_six_indexes_then_changes_nothing(db):
    rc, out = playbook(db, 'playbooks/deploy_indexes.yml', '-i', 'inventories/local')
    assert rc == 0, out
    assert six_state(db) == {name: True for name in SIX}
    assert recap(out)['changed'] >= 1 and recap(out)['failed'] == 0
    assert 'idx_payments_org_status_created on public.payments: created, valid' in out
    rc, out = playbook(db, 'playbooks/deploy_indexes.yml', '-i', 'inventories/local')
    assert rc == 0, out
    assert recap(out)['changed'] == 0
    assert out.count(': none, valid') == 6


@pytest.mark.smoke
def test_check_diff_changes_nothing_and_shows_the_sql(db):
    rc, out = playbook(db, 'playbooks/deploy_indexes.yml', '-i', 'inventories/local', '--check', '--diff')
    assert rc == 0, out
    assert six_state(db) == {name: None for name in SIX}
    for name in SIX:
        assert 'would run: CREATE INDEX CONCURRENTLY "%s"' % name in out
    assert '+CREATE INDEX idx_fr_overview_org_period ON public.franchise_overview USING btree (org_id, period)' in out


@pytest.mark.smoke
def test_rollback_drops_exactly_the_change_set_in_reverse_order(db):
    db.query('CREATE INDEX idx_payments_method ON payments (method)')
    assert playbook(db, 'playbooks/deploy_indexes.yml', '-i', 'inventories/local')[0] == 0
    rc, out = playbook(db, 'playbooks/rollback_indexes.yml', '-i', 'inventories/local')
    assert rc == 0, out
    assert six_state(db) == {name: None for name in SIX}
    assert db.indexes_on('payments') == ['idx_payments_method', 'payments_pkey']
    drops = re.findall(r'ran: DROP INDEX CONCURRENTLY IF EXISTS "public"."(\w+)"', out)
    assert drops == SIX[::-1]
    rc, out = playbook(db, 'playbooks/rollback_indexes.yml', '-i', 'inventories/local')
    assert rc == 0 and recap(out)['changed'] == 0, out


def test_libpq_environment_chooses_the_server(db):
    from pgserver import free_port
    port = free_port()
    rc, out = playbook(db, 'playbooks/deploy_indexes.yml', '-i', 'inventories/local', env={'PGPORT': str(port)})
    assert rc != 0
    assert 'could not connect to PostgreSQL (host=127.0.0.1 port=%d dbname=%s user=postgres)' % (port, db.name) in out
    assert 'Traceback' not in out


def test_invalid_change_set_is_refused_before_connecting(db, tmp_path):
    changeset = tmp_path / 'bad.yml'
    changeset.write_text('pgindex_indexes:\n  - name: idx_a\n    table: payments\n')
    rc, out = playbook(db, 'playbooks/deploy_indexes.yml', '-i', 'inventories/local',
                       '-e', 'pgindex_changeset_file=%s' % changeset)
    assert rc != 0 and 'index idx_a: columns must list at least one column when state is present' in out


@pytest.mark.smoke
def test_installed_collection_runs_the_playbook_by_fqcn(db, tmp_path):
    # no ANSIBLE_CONFIG: the checkout's ansible.cfg makes this very collection look installed already
    env = {k: v for k, v in os.environ.items() if not k.startswith('ANSIBLE_')}
    build = subprocess.run([str(BIN / 'ansible-galaxy'), 'collection', 'build', str(ROOT), '--output-path',
                            str(tmp_path)], capture_output=True, text=True, cwd=str(tmp_path), env=env, check=False)
    assert build.returncode == 0, build.stdout + build.stderr
    tarball = next(tmp_path.glob('chefcloud-pgindex-*.tar.gz'))
    install = subprocess.run([str(BIN / 'ansible-galaxy'), 'collection', 'install', '--force', str(tarball), '-p',
                              str(tmp_path / 'collections')], capture_output=True, text=True, cwd=str(tmp_path),
                             env=env, check=False)
    assert install.returncode == 0, install.stdout + install.stderr
    installed = tmp_path / 'collections' / 'ansible_collections' / 'chefcloud' / 'pgindex'
    assert (installed / 'playbooks' / 'deploy_indexes.yml').is_file(), install.stdout + install.stderr
    config = tmp_path / 'ansible.cfg'
    config.write_text('[defaults]\n')
    rc, out = playbook(db, 'chefcloud.pgindex.deploy_indexes', '-i', str(ROOT / 'inventories' / 'local'),
                       env={'ANSIBLE_CONFIG': str(config), 'ANSIBLE_COLLECTIONS_PATH': str(tmp_path / 'collections')},
                       cwd=tmp_path)
    assert rc == 0, out
    # the role ran from the installed copy, not from this checkout
    assert str(tmp_path / 'collections' / 'ansible_collections' / 'chefcloud' / 'pgindex' / 'roles') in out
    assert six_state(db) == {name: True for name in SIX}


def test_role_passes_every_index_option_from_the_change_set(db, tmp_path):
    db.query('CREATE INDEX idx_inv_open_sku ON inventory_batches (org_id)')  # drifted: replaced by the role
    changeset = tmp_path / 'advanced.yml'
    changeset.write_text(
        'pgindex_changeset_name: advanced\n'
        'pgindex_on_drift: replace\n'
        'pgindex_indexes:\n'
        '  - name: idx_inv_open_sku\n'
        '    table: inventory_batches\n'
        '    columns: [org_id, {expression: lower(sku), opclass: text_pattern_ops}, {name: received_at, order: desc}]\n'
        '    include: [quantity]\n'
        '    where: expires_at IS NOT NULL\n'
        '    storage_params: {fillfactor: 80}\n'
        '    verify: {query: "SELECT 1 FROM inventory_batches WHERE org_id = %(org)s AND lower(sku) LIKE %(sku)s'
        ' AND expires_at IS NOT NULL", params: {org: ORG_12345, sku: "sku-0001%"}}\n')
    rc, out = playbook(db, 'playbooks/deploy_indexes.yml', '-i', 'inventories/local',
                       '-e', 'pgindex_changeset_file=%s' % changeset)
    assert rc == 0, out
    assert db.index('idx_inv_open_sku') == (
        True, 'CREATE INDEX idx_inv_open_sku ON public.inventory_batches USING btree (org_id, lower(sku) '
        "text_pattern_ops, received_at DESC) INCLUDE (quantity) WITH (fillfactor='80') WHERE (expires_at IS NOT NULL)",
        'inventory_batches')
    assert 'idx_inv_open_sku on public.inventory_batches: replaced, valid' in out


def test_tables_build_in_parallel_and_report_progress_while_they_wait(db, tmp_path):
    import threading
    import time
    from helpers.sessions import OldSnapshot, wait_until
    changeset = tmp_path / 'two.yml'
    changeset.write_text(
        'pgindex_changeset_name: two\n'
        'pgindex_indexes:\n'
        '  - {name: idx_a, table: payments, columns: [org_id]}\n'
        '  - {name: idx_b, table: payments, columns: [status]}\n'
        '  - {name: idx_c, table: purchase_orders, columns: [org_id]}\n')
    snapshot = OldSnapshot(db)   # the builds must outwait it: a few seconds of "waiting for old snapshots"

    def end_snapshot_once_a_build_waits():
        wait_until(db, "SELECT EXISTS (SELECT 1 FROM pg_stat_progress_create_index WHERE phase LIKE 'waiting%%')",
                   timeout=120)
        time.sleep(3)   # long enough for the progress loop (every second) to report the wait
        snapshot.end()
    timer = threading.Thread(target=end_snapshot_once_a_build_waits, daemon=True)
    timer.start()
    try:
        rc, out = playbook(db, 'playbooks/deploy_indexes.yml', '-i', 'inventories/local', '-e',
                           'pgindex_changeset_file=%s' % changeset, '-e', 'pgindex_progress_interval=1',
                           '-e', 'pgindex_verify=false', '-e', '{"pgindex_preflight_checks": []}')
    finally:
        timer.join()
    assert rc == 0, out
    version = int(db.query('SHOW server_version_num')[0][0])
    flat = out.replace('\n', ' ').replace('  ', ' ')
    # idx_a and idx_b are on one table: never built together; on 14+ payments and purchase_orders are
    if version >= 140000:
        assert re.search(r'\] \d of 3 done, 2 building', out), out
    else:
        assert re.search(r'\] \d of 3 done, 1 building', out) and not re.search(r'\] \d of 3 done, 2 building', out)
    assert re.search(r"idx_a on public.payments: waiting for old snapshots.*\[waiting for a virtualxid lock", flat)
    assert all(db.index(name)[0] for name in ('idx_a', 'idx_b', 'idx_c'))


def test_change_set_paths_resolve_from_the_current_directory_or_fail_clearly(db):
    rc, out = playbook(db, 'playbooks/deploy_indexes.yml', '-i', 'inventories/local', '--check',
                       '-e', 'pgindex_changeset_file=changesets/001_franchise_indexes.yml')
    assert rc == 0, out
    assert 'would run: CREATE INDEX CONCURRENTLY "idx_fr_overview_org_period"' in out
    rc, out = playbook(db, 'playbooks/deploy_indexes.yml', '-i', 'inventories/local', '--check',
                       '-e', 'pgindex_changeset_file=changesets/no_such_changeset.yml')
    assert rc != 0 and "change set file 'changesets/no_such_changeset.yml' not found; looked at: " in out
    assert six_state(db) == {name: None for name in SIX}

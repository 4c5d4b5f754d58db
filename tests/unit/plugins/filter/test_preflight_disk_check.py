"""Filter chefcloud.pgindex.preflight_disk_check: the df output of the database host judged against the estimate.

Pure (no server): the df output is this machine's real `df -P -B1`, as the role registers it on the DB host.
"""
import subprocess

from ansible_collections.chefcloud.pgindex.plugins.filter.preflight_disk_check import FilterModule

disk_check = FilterModule().filters()['preflight_disk_check']


def df(path):
    """A registered result of the role's looped `df -P -B1 <path>` task."""
    proc = subprocess.run(['df', '-P', '-B1', str(path)], capture_output=True, text=True, check=False)
    return dict(item=dict(path=str(path)), rc=proc.returncode, stdout=proc.stdout, stderr=proc.stderr)


def available(path):
    return int(df(path)['stdout'].splitlines()[-1].split()[3])


def space(*locations, **options):
    return dict(estimated=True, min_free_percent=options.get('min_free', 0),
                free_margin_percent=options.get('margin', 20),
                locations=[dict(path=str(path), what=[what], required_bytes=required) for path, what, required in locations])


def test_a_small_build_passes_and_names_the_filesystem(tmp_path):
    result = disk_check([df(tmp_path)], space((tmp_path, 'idx_a', 1024)), host='pg1')
    assert result['name'] == 'disk' and result['status'] == 'pass', result
    assert '%s (' % tmp_path in result['message'] and 'pg1' in result['message']
    [fs] = result['data']['filesystems']
    assert fs['required_bytes'] == 1024 and fs['ok'] and fs['paths'] == [str(tmp_path)]


def test_locations_on_one_filesystem_add_up_and_fail_over_the_margin(tmp_path):
    a, b = tmp_path / 'a', tmp_path / 'b'
    a.mkdir()
    b.mkdir()
    half = available(tmp_path) // 2
    # each half fits on its own; together plus the 20 % margin they do not
    result = disk_check([df(a), df(b)], space((a, 'idx_a', half), (b, 'WAL', half)), host='pg1')
    assert result['status'] == 'fail', result
    [fs] = result['data']['filesystems']
    assert fs['paths'] == [str(a), str(b)] and fs['required_bytes'] == 2 * half and not fs['ok']
    assert 'not enough free space on' in result['message'] and 'free_margin_percent' in result['message']


def test_a_failed_df_fails_the_check_with_what_to_do(tmp_path):
    missing = tmp_path / 'not-there'
    result = disk_check([df(missing)], space((missing, 'idx_a', 1)), host='pg1')
    assert result['status'] == 'fail'
    assert result['message'].startswith('df -P -B1 %s failed on pg1: ' % missing), result['message']
    denied = dict(item=str(tmp_path), rc=1, stdout='', stderr="df: '/pgdata': Permission denied")
    result = disk_check([denied], space((tmp_path, 'idx_a', 1)), host='pg1')
    assert 'run the play with become, or set pgindex_data_directory' in result['message']


def test_skipped_results_are_ignored_and_a_missing_df_is_reported(tmp_path):
    result = disk_check([dict(skipped=True, item=dict(path=str(tmp_path)))], space((tmp_path, 'idx_a', 1)), host='pg1')
    assert result['status'] == 'fail' and result['message'] == 'df was not run on pg1 for %s' % tmp_path


def test_without_an_estimate_it_warns_instead_of_guessing():
    result = disk_check([], dict(estimated=False, locations=[]), host='pg1')
    assert result['status'] == 'warn' and 'no space estimate' in result['message']


# ---------------------------------------------------------------- the role's one measuring command
def measure(*paths):
    """The registered result of the role's measuring task: its script (roles/pgindex/vars/main.yml) run with
    sh -c, the paths as its arguments, as the raw task runs it on the database host."""
    import os
    import yaml
    role_vars = os.path.join(os.path.dirname(__file__), '..', '..', '..', '..', 'roles', 'pgindex', 'vars', 'main.yml')
    with open(role_vars) as handle:
        script = yaml.safe_load(handle)['pgindex_host_measure_script']
    proc = subprocess.run(['sh', '-c', script, 'pgindex-measure'] + [str(p) for p in paths],
                          capture_output=True, text=True, check=False)
    return dict(rc=proc.returncode, stdout=proc.stdout, stderr=proc.stderr)


def test_one_command_measures_the_cpus_and_every_path_even_an_odd_one(tmp_path):
    import os
    from ansible_collections.chefcloud.pgindex.plugins.module_utils.preflight_disk import split_host_measure
    odd = tmp_path / "it's a $(touch pwned) dir"
    odd.mkdir()
    missing = tmp_path / 'not-there'
    result = measure(tmp_path, odd, missing)
    cpus, reports = split_host_measure(result['stdout'])
    assert cpus == os.cpu_count()
    assert [r['path'] for r in reports] == [str(tmp_path), str(odd), str(missing)]
    assert [r['rc'] for r in reports] == [0, 0, 1]
    assert not (tmp_path / 'pwned').exists()   # a path is an argument, never shell text
    judged = disk_check(result, space((tmp_path, 'idx_a', 1024), (odd, 'WAL', 1)), host='pg1')
    assert judged['status'] == 'pass', judged
    [fs] = judged['data']['filesystems']
    assert fs['paths'] == [str(tmp_path), str(odd)] and fs['required_bytes'] == 1025
    judged = disk_check(result, space((missing, 'idx_a', 1)), host='pg1')
    assert judged['status'] == 'fail' and judged['message'].startswith('df -P -B1 %s failed on pg1: ' % missing)


def test_a_skipped_measure_reports_df_not_run(tmp_path):
    result = disk_check(dict(skipped=True, changed=False), space((tmp_path, 'idx_a', 1)), host='pg1')
    assert result['status'] == 'fail' and result['message'] == 'df was not run on pg1 for %s' % tmp_path

"""module_utils/schedule.py: one table's indexes never share a wave; waves hold at most N."""
from ansible_collections.chefcloud.pgindex.plugins.module_utils.schedule import build_waves, default_parallelism


def names(waves):
    return [[i['name'] for i in wave] for wave in waves]


def test_same_table_is_sequential_other_tables_parallel():
    indexes = [dict(name='a1', table='a'), dict(name='a2', table='a'), dict(name='b1', table='b'),
               dict(name='c1', table='c'), dict(name='c2', table='c', schema='other'), dict(name='a3', table='a')]
    assert names(build_waves(indexes, 2)) == [['a1', 'b1'], ['c1', 'c2'], ['a2'], ['a3']]
    assert names(build_waves(indexes, 1)) == [['a1'], ['b1'], ['c1'], ['c2'], ['a2'], ['a3']]
    assert names(build_waves(indexes, 8)) == [['a1', 'b1', 'c1', 'c2'], ['a2'], ['a3']]
    for wave in build_waves(indexes, 8):
        tables = [(i.get('schema', 'public'), i['table']) for i in wave]
        assert len(set(tables)) == len(tables)


def test_default_parallelism_follows_the_server_version():
    assert default_parallelism(130016) == 1 and default_parallelism(140000) == 2 and default_parallelism(180001) == 2
    assert build_waves([], 2) == []

"""Partitioned tables: ON ONLY parent, concurrent builds per partition, ATTACH, resumable."""
from helpers.modules import run_module

EVENTS = dict(name='idx_events_org', table='events', columns=['region', 'org_id'])


def make_events(db):
    """events: partitioned by region; 'eu' is itself partitioned by hash (sub-partitions)."""
    db.query("""
        CREATE TABLE events (region text NOT NULL, org_id text NOT NULL, code int NOT NULL) PARTITION BY LIST (region);
        CREATE TABLE events_us PARTITION OF events FOR VALUES IN ('us');
        CREATE TABLE events_ap PARTITION OF events FOR VALUES IN ('ap');
        CREATE TABLE events_eu PARTITION OF events FOR VALUES IN ('eu') PARTITION BY HASH (org_id);
        CREATE TABLE events_eu_0 PARTITION OF events_eu FOR VALUES WITH (MODULUS 2, REMAINDER 0);
        CREATE TABLE events_eu_1 PARTITION OF events_eu FOR VALUES WITH (MODULUS 2, REMAINDER 1);
        INSERT INTO events SELECT (ARRAY['us','ap','eu'])[1 + i % 3], 'ORG_' || i % 50, i FROM generate_series(1, 3000) i;
    """)


def index_module(db, check_mode=False, **args):
    return run_module('pg_concurrent_index', dict(db.params, **args), check_mode=check_mode)


def attached_tree(db, index='idx_events_org'):
    """{table: (index, valid)} for every index in the partitioned index's tree."""
    rows = db.query("SELECT i.indrelid::regclass::text, t.relid::regclass::text, i.indisvalid"
                    " FROM pg_partition_tree(%s::regclass) t JOIN pg_index i ON i.indexrelid = t.relid", (index,))
    return dict((table, (idx, valid)) for table, idx, valid in rows)


def test_builds_each_partition_concurrently_and_attaches(db):
    make_events(db)
    failed, result = index_module(db, check_mode=True, **EVENTS)
    assert not failed and result['action'] == 'created'
    assert db.index('idx_events_org') is None
    failed, result = index_module(db, **EVENTS)
    assert not failed, result
    assert result['action'] == 'created' and result['valid'] is True
    assert result['queries'][0] == ('CREATE INDEX "idx_events_org" ON ONLY "public"."events" USING btree '
                                    '("region", "org_id")')
    concurrent = [q for q in result['queries'] if 'CONCURRENTLY' in q]
    assert len(concurrent) == 4   # the four leaf partitions
    tree = attached_tree(db)
    assert tree == {
        'events': ('idx_events_org', True),
        'events_us': ('events_us_idx_events_org', True), 'events_ap': ('events_ap_idx_events_org', True),
        'events_eu': ('events_eu_idx_events_org', True),
        'events_eu_0': ('events_eu_0_idx_events_org', True), 'events_eu_1': ('events_eu_1_idx_events_org', True)}
    assert sorted((p['partition'], p['action']) for p in result['partitions']) == [
        ('public.events_ap', 'created'), ('public.events_eu', 'created'), ('public.events_eu_0', 'created'),
        ('public.events_eu_1', 'created'), ('public.events_us', 'created')]
    failed, result = index_module(db, **EVENTS)
    assert not failed and result['action'] == 'none' and result['queries'] == []


def test_a_failed_partition_is_resumed_on_the_next_run(db):
    make_events(db)
    db.query("INSERT INTO events VALUES ('us', 'dup', -1), ('us', 'dup', -1)")
    unique = dict(name='idx_events_u', table='events', columns=['region', 'org_id', 'code'], unique=True)
    failed, result = index_module(db, **unique)
    assert failed and 'could not create unique index "events_us_idx_events_u"' in result['msg']
    assert result['cleaned_up'] == ['public.events_us_idx_events_u']
    assert db.index('idx_events_u')[0] is False          # the parent: not every partition attached yet
    assert db.index('events_us_idx_events_u') is None     # no INVALID leftover on the failed partition
    done_before = sorted(t for t, (i, v) in attached_tree(db, 'idx_events_u').items() if v and t != 'events')
    assert done_before   # partitions built before the failure stay attached
    db.query("DELETE FROM events WHERE org_id = 'dup' AND code = -1 AND ctid IN"
             " (SELECT ctid FROM events_us WHERE org_id = 'dup' LIMIT 1)")
    failed, result = index_module(db, **unique)
    assert not failed, result
    assert result['action'] == 'resumed' and result['valid'] is True
    built_now = ' '.join(q for q in result['queries'] if 'CONCURRENTLY' in q)
    assert '"events_us_idx_events_u"' in built_now
    for table in done_before:   # finished partitions are not built again
        assert '"%s_idx_events_u"' % table not in built_now
    assert all(valid for index, valid in attached_tree(db, 'idx_events_u').values())


def test_absent_drops_the_partitioned_index_and_its_children(db):
    make_events(db)
    index_module(db, **EVENTS)
    failed, result = index_module(db, state='absent', **EVENTS)
    assert not failed and result['action'] == 'dropped'
    assert result['queries'] == ['DROP INDEX IF EXISTS "public"."idx_events_org"']
    assert any('cannot drop it concurrently' in str(w) for w in result['warnings'])
    assert db.query("SELECT count(*) FROM pg_indexes WHERE tablename LIKE 'events%%'")[0][0] == 0


def test_replace_is_refused_on_partitioned_tables(db):
    make_events(db)
    db.query('CREATE INDEX idx_events_org ON events (org_id)')
    failed, result = index_module(db, on_drift='replace', **EVENTS)
    assert failed and 'only on_drift=fail or ignore are supported' in result['msg']

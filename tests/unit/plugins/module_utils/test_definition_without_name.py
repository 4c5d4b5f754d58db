"""index_spec.definition_without_name: the same index under two names compares equal."""
from ansible_collections.chefcloud.pgindex.plugins.module_utils.index_spec import definition_without_name


def test_same_definition_under_two_names(db):
    db.query('CREATE INDEX "A b" ON payments (org_id); CREATE UNIQUE INDEX idx_u ON payments (id);'
             ' CREATE INDEX idx_c ON payments (org_id)')
    rows = dict(db.query("SELECT relname, pg_get_indexdef(oid) || '|' || quote_ident(relname) FROM pg_class"
                         " WHERE relname IN ('A b', 'idx_u', 'idx_c')"))
    keys = {name: definition_without_name(*value.split('|')) for name, value in rows.items()}
    assert keys['A b'] == keys['idx_c'] == 'CREATE INDEX ON public.payments USING btree (org_id)'
    assert keys['idx_u'] == 'CREATE UNIQUE INDEX ON public.payments USING btree (id)'

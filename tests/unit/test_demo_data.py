"""tests/utils/demo_data.py: the generators hold at the row counts the benchmarks use (ROWS=5000000)."""
import demo_data


def test_rows_far_into_a_5m_row_table_are_valid(db):
    conn = db.connect()
    try:
        demo_data.load(conn, 2, schema='big', log=lambda *a: None, first=4999999)
    finally:
        conn.close()
    for table in demo_data.TABLES:
        rows = db.query('SELECT id, org_id FROM big.%s ORDER BY id' % table)
        assert [r[0] for r in rows] == [4999999, 5000000]
        assert all(10000 <= int(org.split("_")[1]) < 14000 for row_id, org in rows)

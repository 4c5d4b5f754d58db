"""module_utils/sql_expression.py: PostgreSQL's grammar (pglast) proves user SQL, not a lexer of ours."""
import pytest

from ansible_collections.chefcloud.pgindex.plugins.module_utils import sql_expression
from ansible_collections.chefcloud.pgindex.plugins.module_utils.errors import SpecError
from ansible_collections.chefcloud.pgindex.plugins.module_utils.index_spec import IndexSpec, render


@pytest.mark.parametrize('text', [
    "status = 'paid'", "lower(email)", "a$e '\\'", "status = ANY (ARRAY['a', 'b'])", "x IS NOT NULL AND y > 0",
    "$$;)--$$ = status", "(org_id)", "coalesce(a, b) COLLATE \"C\"", "\"weird);name\" > 0", "E'\\')' = status",
])
def test_one_expression_is_accepted(text):
    assert sql_expression.check_single_expression('where of index x', text) == text


@pytest.mark.parametrize('text, reason', [
    ("status = a$e'\\' ); SELECT nextval($q$seq$q$); --'", 'closes a parenthesis it did not open'),
    ("a) , (b", 'closes a parenthesis it did not open'),
    ("(a", 'unbalanced parentheses'),
    ("1; SELECT 2", '";" is not allowed'),
    ("a /* x */", 'without comments'),
    ("a -- x", 'without comments'),
    ("(SELECT 1)", 'must not hold a subquery'),
    ("EXISTS (SELECT 1)", 'must not hold a subquery'),
    ("'unterminated", 'unterminated'),
    ("a +", 'is not valid SQL: syntax error'),
    ("", 'non-empty'),
    ("a\x00", 'NUL'),
])
def test_anything_else_is_refused(text, reason):
    with pytest.raises(SpecError) as caught:
        sql_expression.check_single_expression('where of index x', text)
    assert reason in caught.value.msg and caught.value.msg.startswith('where of index x')


def test_the_whole_statement_must_be_the_index_given():
    spec = IndexSpec('idx_x', 'payments', columns=[dict(expression='lower(status)'), 'org_id'], where='org_id > 0',
                     include=['amount'])
    text = render(spec.create_statement())
    assert text == ('CREATE INDEX CONCURRENTLY "idx_x" ON "public"."payments" USING btree ((lower(status)), "org_id") '
                    'INCLUDE ("amount") WHERE (org_id > 0)')
    assert spec.prove(text) == text
    for forged, reason in [
        (text + '; SELECT 1', 'must be a single statement, got 2'),
        (text.replace('WHERE (org_id > 0)', 'WHERE (org_id > 1)'), 'the predicate'),
        (text.replace('(lower(status))', '(upper(status))'), 'does not parse to itself'),
        (text.replace(', "org_id")', ', "org_id", "x")'), 'key(s)'),
        (text.replace(' WHERE (org_id > 0)', ''), 'the predicate'),
        (text + ' -- x', 'without comments'),
        ('SELECT 1', 'must be one CREATE INDEX statement'),
    ]:
        with pytest.raises(SpecError) as caught:
            spec.prove(forged)
        assert reason in caught.value.msg, (forged, caught.value.msg)


def test_a_list_is_refused_by_the_statement_it_would_make():
    with pytest.raises(SpecError) as caught:
        IndexSpec('idx_x', 'payments', columns=[dict(expression='a, b')])
    assert caught.value.msg.startswith('CREATE INDEX of index idx_x is not valid SQL: syntax error at or near ","')


def test_one_statement_of_the_expected_kind():
    assert sql_expression.check_one_statement('q', 'SELECT 1', 'SelectStmt') == 'SELECT 1'
    for text, reason in [('SELECT 1; SELECT 2', 'got 2'), ('DROP TABLE t', 'must be a SelectStmt statement'),
                         ('SELECT 1 -- x', 'without comments')]:
        with pytest.raises(SpecError) as caught:
            sql_expression.check_one_statement('q', text, 'SelectStmt')
        assert reason in caught.value.msg


def test_a_tagged_string_subclass_is_read_like_a_str():
    class Tagged(str):
        pass
    assert sql_expression.check_single_expression('x', Tagged('a > 1')) == 'a > 1'

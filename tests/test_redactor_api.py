"""`qlingest.Redactor` for library callers: strings, lists and frames of any text-holding type."""

from __future__ import annotations

import json
from decimal import Decimal

import polars as pl
import pytest
from qlingest import Pipeline, Redactor

CARD = "4111 1111 1111 1111"
TOKEN = "ghp_aB1cD2eF3gH4iJ5kL6mN7oP8qR9sT0uV1wX2"


def test_a_string_is_one_text_not_a_list_of_characters():
    redactor = Redactor()
    assert redactor.redact(f"card {CARD} declined") == "card [REDACTED:credit_card] declined"
    assert redactor.counts["credit_card"] == 1


def test_a_list_of_strings_keeps_its_order_and_length():
    out = Redactor().redact(["fine", f"card {CARD}", ""])
    assert out == ["fine", "card [REDACTED:credit_card]", ""]


def test_other_inputs_are_refused():
    with pytest.raises(TypeError):
        Redactor().redact(b"card " + CARD.encode())
    with pytest.raises(TypeError):
        Redactor().redact([1, 2])


def test_text_inside_categorical_list_and_struct_columns_is_redacted():
    frame = pl.DataFrame(
        {
            "cat": pl.Series([f"card {CARD}", "plain"], dtype=pl.Categorical),
            "enum": pl.Series(["a", "b"], dtype=pl.Enum(["a", "b"])),
            "tags": [["x", f"card {CARD}"], None],
            "meta": [{"auth": f"token={TOKEN}", "n": 1}, {"auth": "none", "n": 2}],
            "n": [1, 2],
        }
    )
    out = Redactor().redact(frame)
    assert out["cat"].to_list() == ["card [REDACTED:credit_card]", "plain"]
    assert out["enum"].to_list() == ["a", "b"]
    assert out["tags"].to_list() == [["x", "card [REDACTED:credit_card]"], None]
    assert out["meta"].struct.field("auth").to_list() == ["token=[REDACTED:github_token]", "none"]
    assert out["meta"].struct.field("n").to_list() == [1, 2]
    assert out["n"].to_list() == [1, 2]
    assert TOKEN not in str(out.rows()) and "4111" not in str(out.rows())


class TestWrongTypes:
    """Attack report s9: odd inputs gave unrelated errors, keys of a dict, or pointer bytes."""

    @pytest.mark.parametrize(
        ("data", "named"),
        [
            (None, "NoneType"),
            (5, "int"),
            ({"password": "x"}, "dict"),
            (("a",), "tuple"),
            (b"card", "bytes"),
            (["a", 1], "a list holding int"),
        ],
    )
    def test_what_redact_cannot_take_is_a_type_error_naming_it(self, data, named):
        with pytest.raises(
            TypeError, match=f"takes a str, a list of str or a polars DataFrame, not {named}$"
        ):
            Redactor().redact(data)

    def test_an_object_column_is_refused_not_returned_as_pointer_bytes(self):
        frame = pl.DataFrame({"o": [object()]}, schema={"o": pl.Object})
        with pytest.raises(TypeError, match="column 'o': it holds Python objects"):
            Redactor().redact(frame)

    def test_a_config_that_is_not_a_redaction_config_is_a_type_error(self):
        with pytest.raises(TypeError, match=r"Redactor takes a RedactionConfig .* not str"):
            Redactor("x")


def test_a_column_named_like_a_secret_key_is_redacted_like_a_field_of_that_name():
    # Attack report s9: a column or struct field named `password` came back as it was.
    fields = Pipeline().decode(b'{"msg": "m", "password": "hunter2xyz"}\n').events["fields"][0]
    as_field = json.loads(fields)["password"]
    frame = pl.DataFrame(
        {
            "password": ["hunter2xyz", None],
            "user": ["bob", "eve"],
            "meta": [{"apiKey": "abcdefgh12"}, {"apiKey": "zyxwvu987"}],
        }
    )

    redactor = Redactor()
    out = redactor.redact(frame)
    assert as_field != "hunter2xyz"
    assert out["password"].to_list() == [as_field, None]
    assert out["user"].to_list() == ["bob", "eve"]
    assert out["meta"].struct.field("apiKey").to_list() == [as_field] * 2
    assert redactor.counts["secret_key"] == 3


def test_a_column_named_like_a_value_rule_match_keeps_its_values():
    # The key of the probe is itself redacted (an e-mail), its value is not.
    out = Redactor().redact(pl.DataFrame({"alice@example.com": ["x"]}))
    assert out.row(0) == ("x",)


def test_integer_columns_holding_secrets_are_redacted_and_the_rest_keep_their_type():
    """Attack report s13 item 9: integer columns passed through unchanged, a card number, an
    SSN and a numeric password among them."""
    frame = pl.DataFrame(
        {
            "password": [123456, None],
            "total": [4111111111111111, 12],
            "count": pl.Series([7, 8], dtype=pl.UInt32),
            "ratio": [4111111111111111.0, 1.5],
        }
    )
    out = Redactor().redact(frame)
    assert out["password"].to_list() == ["[REDACTED:secret_key]", None]
    assert out["total"].to_list() == ["[REDACTED:credit_card]", "12"]
    assert out.schema["count"] == pl.UInt32 and out["count"].to_list() == [7, 8]
    assert out.schema["ratio"] == pl.Float64  # floats are left as they are


def test_decimal_columns_holding_secrets_are_redacted_and_the_rest_keep_their_type():
    """Hardening s14: a card number stored as a Decimal passed unchanged."""
    frame = pl.DataFrame(
        {
            "card": pl.Series([Decimal("4111111111111111"), Decimal(7)], dtype=pl.Decimal(16, 0)),
            "amount": pl.Series(
                [Decimal("4111111111111111.50"), Decimal("1.25")], dtype=pl.Decimal(20, 2)
            ),
            "password": pl.Series([Decimal(123456), None], dtype=pl.Decimal(6, 0)),
            "price": pl.Series([Decimal("9.99"), None], dtype=pl.Decimal(10, 2)),
        }
    )
    redactor = Redactor()
    out = redactor.redact(frame)
    assert out["card"].to_list() == ["[REDACTED:credit_card]", "7"]
    assert out["amount"].to_list() == ["[REDACTED:credit_card].50", "1.25"]
    assert out["password"].to_list() == ["[REDACTED:secret_key]", None]
    assert out.schema["price"] == pl.Decimal(10, 2)
    assert out["price"].to_list() == [Decimal("9.99"), None]
    assert redactor.counts["credit_card"] == 2 and redactor.counts["secret_key"] == 1


def test_number_lists_keep_their_type_unless_a_value_is_replaced():
    """Found in hardening s14: a list of UInt32 came back as a list of Int64, and a list of
    Decimal(10, 2) as Decimal(38, 2), with nothing in them redacted."""
    frame = pl.DataFrame(
        {
            "ports": pl.Series([[80, 443], None], dtype=pl.List(pl.UInt32)),
            "prices": pl.Series([[Decimal("1.50")], []], dtype=pl.List(pl.Decimal(10, 2))),
            "cards": pl.Series(
                [[Decimal("4111111111111111")]], dtype=pl.List(pl.Decimal(16, 0))
            ).extend_constant(None, 1),
        }
    )
    out = Redactor().redact(frame)
    assert out.schema["ports"] == pl.List(pl.UInt32)
    assert out["ports"].to_list() == [[80, 443], None]
    assert out.schema["prices"] == pl.List(pl.Decimal(10, 2))
    assert out["prices"].to_list() == [[Decimal("1.50")], []]
    assert out["cards"].to_list() == [["[REDACTED:credit_card]"], None]


def test_a_column_of_the_null_type_is_kept_and_the_rest_redacted():
    """Attack report s13 round 2 item 5: one all-null column (Polars' Null type) failed the
    whole frame with an Arrow C Data interface error."""
    frame = pl.DataFrame(
        {"a": pl.Series([None, None], dtype=pl.Null), "b": ["x", "ssn 078-05-1120"]}
    )
    out = Redactor().redact(frame)
    assert out.columns == ["a", "b"] and out.schema["a"] == pl.Null
    assert out["b"].to_list() == ["x", "ssn [REDACTED:ssn]"]
    only = Redactor().redact(pl.DataFrame({"a": pl.Series([None], dtype=pl.Null)}))
    assert only.schema == {"a": pl.Null} and only.height == 1


def test_null_types_inside_lists_and_structs_are_kept_and_the_rest_redacted():
    """Attack report s13 round 3 item 4: `[[], None]` (List(Null)) or a struct with a Null
    field failed the whole frame as a Null column did."""
    frame = pl.DataFrame(
        {
            "l": [[], None],
            "s": [{"a": None, "b": "ssn 078-05-1120"}, {"a": None, "b": "x"}],
            "t": ["x", "mail bob@example.com"],
        }
    )
    out = Redactor().redact(frame)
    # Polars casts nothing to a nested Null type, so those parts come back as (null) text.
    assert out.schema["l"] == pl.List(pl.String) and out.schema["t"] == pl.String
    assert out["l"].to_list() == [[], None]
    assert out["s"].struct.field("a").to_list() == [None, None]
    assert out["s"].struct.field("b").to_list() == ["ssn [REDACTED:ssn]", "x"]
    assert out["t"].to_list()[0] == "x" and "bob@" not in out["t"].to_list()[1]

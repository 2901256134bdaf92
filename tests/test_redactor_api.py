"""`qlingest.Redactor` for library callers: strings, lists and frames of any text-holding type."""

from __future__ import annotations

import polars as pl
import pytest
from qlingest import Redactor

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

"""The one catalogue of reason codes (lifecycle/reasons.py)."""
from __future__ import annotations

import ast
from datetime import datetime
from pathlib import Path

import pytest

from lifecycle import reasons
from lifecycle.reasons import ALLOWED, CANCEL_REASONS, REASONS, WORDING, decide, decide_for, register

ROOT = Path(__file__).resolve().parents[1]


def test_every_code_has_both_languages_and_every_yes_code_exists():
    for code, (ja, en) in REASONS.items():
        assert ja and en, code
    assert ALLOWED <= set(REASONS)
    for place, words in WORDING.items():
        assert set(words) <= set(REASONS), place       # a place rewords a code, never invents one
        assert all(ja and en for ja, en in words.values()), place


def test_decide_gives_the_catalogue_message_and_the_place_its_own_words():
    d = decide("loan_limit", limit=10)
    assert (d.allowed, d.code, d.message_ja, d.details) == (False, "loan_limit", REASONS["loan_limit"][0],
                                                             {"limit": 10})
    assert decide("added").message_ja != decide_for("cart", "added").message_ja
    assert decide_for("cart", "added").allowed and decide_for("cart", "added").code == "added"
    assert decide_for("cart", "cart_full") == decide("cart_full")
    with pytest.raises(KeyError):
        decide("no_such_code")


def test_register_refuses_a_code_twice_and_adds_new_ones(monkeypatch):
    monkeypatch.setattr(reasons, "REASONS", dict(REASONS))
    monkeypatch.setattr(reasons, "ALLOWED", set(ALLOWED))
    with pytest.raises(ValueError, match="loan_limit"):
        register({"loan_limit": ("x", "y")})
    with pytest.raises(ValueError, match="Japanese and an English"):
        register({"brand_new": ("x", "")})
    with pytest.raises(ValueError, match="allowed"):
        register({"brand_new": ("x", "y")}, allowed={"other"})
    register({"brand_new": ("新しい", "new")}, allowed={"brand_new"})
    assert reasons.decide("brand_new").allowed


def test_locked_until_names_the_time_in_both_languages():
    d = reasons.locked_until(datetime(2026, 11, 20, 10, 30))
    assert d.code == "locked_out" and not d.allowed
    assert "10:30" in d.message_ja and "10:30" in d.message_en


def test_recorded_cancel_reasons_have_english_labels():
    recorded = {v for k, v in vars(reasons).items() if k.startswith("REASON_")}
    unlabelled = recorded - set(CANCEL_REASONS)
    # the two partner reasons are shown as recorded in English mails too (notices)
    assert unlabelled == {reasons.REASON_CANCEL_ON_ARRIVAL, reasons.REASON_UNFILLED}


def test_no_module_keeps_a_catalogue_of_its_own():
    """Messages live in lifecycle/reasons.py only: no other module of lifecycle/ or
    circulation/ builds a Decision from its own (Japanese, English) table."""
    for room in ("lifecycle", "circulation"):
        for path in (ROOT / room).rglob("*.py"):
            if path == ROOT / "lifecycle" / "reasons.py":
                continue
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "of":
                    assert getattr(node.func.value, "id", None) != "Decision", path
                if isinstance(node, ast.FunctionDef):
                    assert node.name not in ("decide", "_refuse"), (path, node.name)

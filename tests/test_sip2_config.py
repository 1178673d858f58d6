"""The [sip2] configuration (sip2/config.py): defaults, per-kiosk options, and every
wrong value refused with the key named."""
from __future__ import annotations

import tomllib

import pytest

from sip2.config import KioskOptions, Sip2Config, load


def test_defaults_without_a_section():
    cfg = load({})
    assert cfg == Sip2Config()
    assert cfg.for_kiosk("any") == KioskOptions("utf-8", "ja", None)
    assert (cfg.max_connections, cfg.login_timeout, cfg.idle_timeout, cfg.max_message) == (100, 60.0, None, 8192)


def test_a_kiosk_of_its_own_inherits_the_rest():
    cfg = load(tomllib.loads('''
[sip2]
encoding = "Shift_JIS"
language = "en"
idle_timeout = 600
[sip2.kiosks."hiroshima.kiosk1"]
encoding = "cp932"
institution_id = "広島市立図書館"
[sip2.kiosks."hiroshima.kiosk2"]
language = "ja"
'''))
    assert cfg.default == KioskOptions("shift_jis", "en", None)
    assert cfg.for_kiosk("hiroshima.kiosk1") == KioskOptions("cp932", "en", "広島市立図書館")
    assert cfg.for_kiosk("hiroshima.kiosk2") == KioskOptions("shift_jis", "ja", None)
    assert cfg.for_kiosk("other") == cfg.default and cfg.idle_timeout == 600


@pytest.mark.parametrize("text,why", [
    ('[sip2]\nencoding = "klingon"', "[sip2].encoding: 'klingon' is not a character set"),
    ('[sip2]\nlanguage = "fr"', "[sip2].language: 'fr' (ja or en)"),
    ('[sip2]\nport = 6001', "[sip2]: unknown keys port"),
    ('[sip2]\nmax_connections = 0', "[sip2].max_connections: a number of at least 1"),
    ('[sip2]\nlogin_timeout = "soon"', "[sip2].login_timeout"),
    ('[sip2.kiosks.k]\ncolour = "red"', "[sip2.kiosks.k]: unknown keys colour"),
    ('[sip2.kiosks.k]\ninstitution_id = "a|b"', "[sip2.kiosks.k].institution_id"),
    ('[sip2]\nkiosks = 3', "[sip2.kiosks] must be a table"),
])
def test_wrong_values_name_their_key(text, why):
    with pytest.raises(ValueError) as e:
        load(tomllib.loads(text))
    assert why in str(e.value)

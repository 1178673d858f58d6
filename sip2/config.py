"""The ``[sip2]`` section of the configuration file (``--config`` or
``DATA_DIR/unioncat.toml``): the kiosks' character set and language, per kiosk account
when one differs, and the server's limits. Every key is optional::

    [sip2]
    encoding = "utf-8"          # how kiosks send text: any Python codec (cp932, euc_jp, ...)
    language = "ja"             # screen messages: ja | en (a patron's 23/63 may ask for 001 English)
    max_connections = 100       # connections at once; one more is closed with a line in the log
    login_timeout = 60          # seconds a new connection has to log in (93)
    idle_timeout = 0            # seconds without a message before a connection is closed (0: never)
    max_message = 8192          # bytes of one message

    [sip2.kiosks."hiroshima.kiosk1"]    # a kiosk account (a staff account with the role kiosk)
    encoding = "cp932"
    institution_id = "hiroshima"        # AO in the responses (default: the account's library code)
    language = "ja"

The Login message (93) is read in the section's ``encoding``, before the server knows
which kiosk it is; a kiosk's own ``encoding`` applies from the message after its login.
"""
from __future__ import annotations

import codecs
from dataclasses import dataclass, field

LANGUAGES = ("ja", "en")


@dataclass(frozen=True)
class KioskOptions:
    encoding: str = "utf-8"
    language: str = "ja"
    institution_id: str | None = None


@dataclass(frozen=True)
class Sip2Config:
    default: KioskOptions = field(default_factory=KioskOptions)
    kiosks: dict[str, KioskOptions] = field(default_factory=dict)
    max_connections: int = 100
    login_timeout: float = 60.0
    idle_timeout: float | None = None
    max_message: int = 8192

    def for_kiosk(self, username: str) -> KioskOptions:
        return self.kiosks.get(username, self.default)


def _options(table: dict, where: str, base: KioskOptions) -> KioskOptions:
    unknown = sorted(set(table) - {"encoding", "language", "institution_id"})
    if unknown:
        raise ValueError(f"{where}: unknown keys {', '.join(unknown)}")
    enc = table.get("encoding", base.encoding)
    try:
        if not isinstance(enc, str):
            raise LookupError
        enc = codecs.lookup(enc).name
    except LookupError:
        raise ValueError(f"{where}.encoding: {enc!r} is not a character set Python knows") from None
    lang = table.get("language", base.language)
    if lang not in LANGUAGES:
        raise ValueError(f"{where}.language: {lang!r} (ja or en)")
    inst = table.get("institution_id", base.institution_id)
    if inst is not None and (not isinstance(inst, str) or "|" in inst):
        raise ValueError(f"{where}.institution_id: a text without '|'")
    return KioskOptions(enc, lang, inst)


def _number(table: dict, key: str, default, *, minimum: float, allow_zero_none: bool = False):
    value = table.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
        raise ValueError(f"[sip2].{key}: a number of at least {minimum}")
    if allow_zero_none and value == 0:
        return None
    return value


def load(data: dict) -> Sip2Config:
    """The configuration from a parsed TOML document (defaults without ``[sip2]``).
    Raises ValueError naming the key that is wrong."""
    table = data.get("sip2", {})
    if not isinstance(table, dict):
        raise ValueError("[sip2] must be a table")
    kiosks_table = table.get("kiosks", {})
    if not isinstance(kiosks_table, dict):
        raise ValueError("[sip2.kiosks] must be a table of kiosk accounts")
    top = {k: v for k, v in table.items() if k in ("encoding", "language", "institution_id")}
    default = _options(top, "[sip2]", KioskOptions())
    unknown = sorted(set(table) - {"encoding", "language", "institution_id", "kiosks", "max_connections",
                                   "login_timeout", "idle_timeout", "max_message"})
    if unknown:
        raise ValueError(f"[sip2]: unknown keys {', '.join(unknown)}")
    kiosks = {}
    for name, t in kiosks_table.items():
        if not isinstance(t, dict):
            raise ValueError(f"[sip2.kiosks.{name}] must be a table")
        kiosks[name] = _options(t, f"[sip2.kiosks.{name}]", default)
    return Sip2Config(
        default=default, kiosks=kiosks,
        max_connections=int(_number(table, "max_connections", 100, minimum=1)),
        login_timeout=float(_number(table, "login_timeout", 60, minimum=1)),
        idle_timeout=_number(table, "idle_timeout", 0, minimum=0, allow_zero_none=True),
        max_message=int(_number(table, "max_message", 8192, minimum=256)))

"""The reservation, loan and ILL lifecycle core (issue 5).

Pure code: a transition table (:mod:`lifecycle.table`), plain records
(:mod:`lifecycle.model`), library calendars (:mod:`lifecycle.calendar`), policy
profiles read from ``config/profiles/*.toml`` (:mod:`lifecycle.profiles`) and
policies as pure functions (:mod:`lifecycle.policies`, :mod:`lifecycle.queue`).
Nothing here does I/O except the profile loader, which reads TOML files; nothing
imports a web framework or a database driver.
"""

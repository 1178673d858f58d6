"""The reservation, loan and ILL lifecycle core (issue 5, reshaped in issue 17).

Pure code: the transition tables of a request (:mod:`lifecycle.table`), a loan
(:mod:`lifecycle.loan_table`) and a copy (:mod:`lifecycle.item_table`), plain records
(:mod:`lifecycle.model`), library calendars (:mod:`lifecycle.calendar`), policy
profiles read from ``config/profiles/*.toml`` (:mod:`lifecycle.profiles`), the rules
as pure functions by subject (:mod:`lifecycle.policies`, :mod:`lifecycle.queue`) and
the one catalogue of reason codes in Japanese and English (:mod:`lifecycle.reasons`).
Nothing here does I/O except the profile loader, which reads TOML files; nothing
imports a web framework, a database driver or ``circulation/``.
"""

"""Harvesting partners' catalogues into the union catalog (docs/harvest.md).

| module | what |
|---|---|
| `config.py` | the `[harvest.<library>]` tables of the configuration file: protocol, address, format, set or query, schedule, credentials, the member library |
| `state.py` | what a harvest keeps in the record store, committed with each page: the cursor, OAI identifiers and their 001s, the runs and their reports |
| `sources.py` | one page fetcher per protocol (OAI-PMH ListRecords, SRU searchRetrieve, Z39.50 search + present), each behind `fetch(cursor)`, with retries (tenacity) |
| `runner.py` | a run: pages in, records through `indexers.ingest.ingest_records` (the ingest's own path), the report; the scheduler `serve` runs |
"""

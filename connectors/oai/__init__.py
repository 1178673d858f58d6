"""OAI-PMH 2.0, sans I/O: what a harvester sends and reads (``protocol.py``) and
what our provider answers (``provider.py``; the aiohttp shell is gateway/oai.py).

| module | what |
|---|---|
| `protocol.py` | datestamps and granularity, request parameters, parsing every response (Identify, ListRecords/ListIdentifiers/GetRecord, errors, resumption tokens), the listing cursor a harvest keeps |
| `provider.py` | the provider's core: arguments checked verb by verb (the OAI-PMH error codes), resumption tokens, responses built from a `Repository` |
"""

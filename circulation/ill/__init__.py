"""Inter-library loan over ISO 18626 on the circulation database, in both roles.

| module | holds |
|---|---|
| `common.py` | `Ill` (the circulation service + the `[ill]` configuration + the title resolver), the audited leg and supply transitions, the message log and outbox |
| `titles.py` | `Title`, the `Titles` resolver protocol and `ItemTitles` (holdings from the circulation items) |
| `requester.py` | our patrons borrow: placing a request by title, the rota, what each supplier message does to the leg and the patron's request, staff answers to offers, the partner's copy arriving, renewals, returns |
| `supplier.py` | partners borrow from us: a Request checked against our holdings at once, the staff queue and pull list, will supply / offer / cannot supply, shipping as a loan to the partner, renew and cancel answers, recall, check-in |
| `sync.py` | the reconciler: the messages a request's or a loan's state owes a partner (Received, ShippedReturn, Overdue, LoanCompleted) |
| `outbox.py` | delivering queued messages with retries; a partner that stays down is seen by staff |
| `node.py` | the endpoint's node: one incoming message → its confirmation, replays answered again without effect |
| `lists.py` | staff queues of both roles and a request's message history |

The protocol core is :mod:`connectors.iso18626`, the leg tables :mod:`lifecycle.ill`.
A partner request of our patron is a ``requests`` row of kind ``partner`` (as the
連携貸出 of :mod:`circulation.partners`), whose copy is a partner's item row: the
university's own copy when the union catalog names it, else a placeholder that
takes the supplier's item id when it is Loaned.
"""

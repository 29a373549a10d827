"""Schema version 4: SLA clocks (`sla_clock`, one row per ticket and clock).

`due_at` is indexed: the sweep asks for the clocks due, never for all tickets.
"""
from store.models import SlaClock


def upgrade(db):
    db.create_tables([SlaClock], safe=True)

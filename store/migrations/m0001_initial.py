"""Schema version 1: the foundation tables (tickets, messages, raw, deliveries, outbox)."""
from store.models import ALL_MODELS


def upgrade(db):
    db.create_tables(ALL_MODELS, safe=True)

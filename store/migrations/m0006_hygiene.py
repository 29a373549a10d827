"""Schema version 6: mail hygiene.

- `message.body_hash` (indexed): sha256 of an inbound mail's visible text, so a burst of
  the same text from one sender finds the first one (maild.customer_mail);
- `bounce`: every bounce received, matched to the outbox row it reports on or not
  (`store.bounces`, `maild bounces`).

Messages of an upgraded database have no hash: a burst collapses only with mail
received after the upgrade.  Outbox rows gain the status `bounced` (a text column: no
change needed).
"""
from store.models import Bounce


def upgrade(db):
    # m0001 creates the tables from today's models, which have the column already
    if "body_hash" not in {c.name for c in db.get_columns("message")}:
        db.execute_sql('ALTER TABLE "message" ADD COLUMN "body_hash" VARCHAR(64)')
    db.execute_sql('CREATE INDEX IF NOT EXISTS "message_body_hash" ON "message" ("body_hash")')
    db.create_tables([Bounce], safe=True)

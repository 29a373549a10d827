"""Schema version 5: SLA escalations.

- `sla_clock.steps_sent` and `sla_clock.next_step_at` (indexed): the sweep reads only the
  clocks whose next escalation step is due;
- `sla_escalation`: the ledger of steps sent, unique per (ticket, clock, cycle, step).

Clocks of an upgraded database have no `next_step_at` yet: the scheduler's first sweep
after start computes it for every running clock (`store.sla.reschedule`), marking the
steps that fell due before the upgrade as sent without a mail (`steps_sent` '?').
"""
from store.db import is_sqlite
from store.models import SlaEscalation


def upgrade(db):
    # m0004 creates sla_clock from today's model, which has these columns already
    have = {c.name for c in db.get_columns("sla_clock")}
    if "steps_sent" not in have:
        # LEGACY ('?'): steps that fell due before the upgrade are not mailed (store.sla.reschedule)
        db.execute_sql("ALTER TABLE \"sla_clock\" ADD COLUMN \"steps_sent\" TEXT NOT NULL DEFAULT '?'")
    if "next_step_at" not in have:
        db.execute_sql('ALTER TABLE "sla_clock" ADD COLUMN "next_step_at" '
                       + ("DATETIME" if is_sqlite(db) else "TIMESTAMP"))
    db.execute_sql('CREATE INDEX IF NOT EXISTS "sla_clock_next_step_at" ON "sla_clock" ("next_step_at")')
    db.create_tables([SlaEscalation], safe=True)

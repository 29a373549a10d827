"""Schema version 3: routing rules.

- `ticket.sla_policy`: the SLA policy the rules (or the queue) chose for the ticket;
- an index on `ticket (assignee, status)`: least-open assignment counts each team
  member's open tickets at every new ticket.

Round-robin turns live in the `counter` table (rows `round_robin:<team>`), created on
first use; no schema change for them.
"""


def upgrade(db):
    db.execute_sql('ALTER TABLE "ticket" ADD COLUMN "sla_policy" TEXT')
    db.execute_sql('CREATE INDEX IF NOT EXISTS "ticket_assignee_status" '
                   'ON "ticket" ("assignee", "status")')

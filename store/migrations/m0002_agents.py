"""Schema version 2: agents work on tickets.

- `message.author`, `message.internal`, `message.auth`: who of the agents wrote a message,
  whether customers may ever see it (notes, notifications, command mail), and the
  sender-authentication verdict for mail from an agent's address;
- `outbox.cc`, `outbox.reply_to`, `outbox.auto_submitted`: agent replies go to the
  requester and the participants, notifications carry a Reply-To, and only automatic mail
  is marked `Auto-Submitted` (rows of version 1 were all acknowledgements: auto-replied).
"""
from store.db import is_sqlite

# Plain ALTER TABLE ... ADD COLUMN with a constant default: both databases add such a column
# in place.  (peewee's SqliteMigrator rebuilds the table for a NOT NULL column instead, which
# the foreign keys of existing rows refuse.)
COLUMNS = (
    ("message", "author", "TEXT NOT NULL DEFAULT ''"),
    ("message", "internal", "{boolean} NOT NULL DEFAULT {false}"),
    ("message", "auth", "TEXT NOT NULL DEFAULT ''"),
    ("outbox", "cc", "TEXT NOT NULL DEFAULT ''"),
    ("outbox", "reply_to", "TEXT"),
    ("outbox", "auto_submitted", "TEXT"),
)


def upgrade(db):
    boolean, false = ("INTEGER", "0") if is_sqlite(db) else ("BOOLEAN", "false")
    for table, column, spec in COLUMNS:
        db.execute_sql(f'ALTER TABLE "{table}" ADD COLUMN "{column}" '
                       + spec.format(boolean=boolean, false=false))
    db.execute_sql('UPDATE "outbox" SET "auto_submitted" = \'auto-replied\' WHERE "automatic" = ' + db.param,
                   (True,))

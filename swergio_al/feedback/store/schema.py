"""The SQL schema, as a list of migrations. Append a step; never edit a released one.

Kept to SQL that SQLite and PostgreSQL both accept, apart from what each backend
spells for itself: key types (`{serial}`) and computed columns (`{generated}`:
SQLite can only add VIRTUAL ones, PostgreSQL only STORED ones).
"""

from __future__ import annotations

# Migration n brings a store from version n-1 to version n.
MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE requests (
            id {serial},
            room TEXT NOT NULL,
            sample_id TEXT NOT NULL,
            sample_is_int INTEGER NOT NULL DEFAULT 0,
            requester TEXT NOT NULL,
            kind TEXT NOT NULL,
            content TEXT,
            answer TEXT NOT NULL,
            question TEXT NOT NULL DEFAULT '',
            prediction TEXT,
            confidence DOUBLE PRECISION,
            priority DOUBLE PRECISION NOT NULL DEFAULT 0,
            overlap INTEGER NOT NULL DEFAULT 1,
            labeled INTEGER NOT NULL DEFAULT 0,
            in_flight INTEGER NOT NULL DEFAULT 0,
            status TEXT NOT NULL,
            created DOUBLE PRECISION NOT NULL,
            updated DOUBLE PRECISION NOT NULL,
            UNIQUE (room, sample_id)
        )""",
        "CREATE INDEX requests_queue ON requests (room, status, priority DESC, id)",
        "CREATE INDEX requests_requester ON requests (requester, status)",
        """CREATE TABLE tasks (
            task_id TEXT PRIMARY KEY,
            request_id INTEGER NOT NULL REFERENCES requests (id),
            room TEXT NOT NULL,
            labeler TEXT NOT NULL,
            status TEXT NOT NULL,
            lease_expires DOUBLE PRECISION NOT NULL,
            created DOUBLE PRECISION NOT NULL,
            updated DOUBLE PRECISION NOT NULL
        )""",
        "CREATE INDEX tasks_request ON tasks (request_id, labeler)",
        "CREATE INDEX tasks_lease ON tasks (status, lease_expires)",
        "CREATE INDEX tasks_labeler ON tasks (room, labeler, status)",
        """CREATE TABLE labels (
            seq {serial},
            label_id TEXT NOT NULL UNIQUE,
            task_id TEXT NOT NULL,
            request_id INTEGER NOT NULL REFERENCES requests (id),
            room TEXT NOT NULL,
            sample_id TEXT NOT NULL,
            sample_is_int INTEGER NOT NULL DEFAULT 0,
            requester TEXT NOT NULL,
            labeler TEXT NOT NULL,
            answer TEXT NOT NULL,
            seconds DOUBLE PRECISION,
            created DOUBLE PRECISION NOT NULL,
            acked INTEGER NOT NULL DEFAULT 0,
            acked_at DOUBLE PRECISION
        )""",
        "CREATE INDEX labels_requester ON labels (requester, acked)",
        "CREATE INDEX labels_room ON labels (room, created)",
    ],
    [
        # Request DATA keys the server does not know (a model's own context for the
        # sample, e.g. its features), echoed back with every label of the sample.
        "ALTER TABLE requests ADD COLUMN extra TEXT",
    ],
    [
        # Each model's LOG/KPI reports, so a dashboard opened late shows the whole
        # learning curve (bounded per model by thinning, see Store.record_kpi).
        """CREATE TABLE kpi (
            seq {serial},
            room TEXT NOT NULL,
            model TEXT NOT NULL,
            created DOUBLE PRECISION NOT NULL,
            data TEXT NOT NULL
        )""",
        "CREATE INDEX kpi_model ON kpi (room, model, seq)",
        "CREATE INDEX tasks_skips ON tasks (room, status, labeler)",
    ],
    [
        # How many more labels a request can take right now, and an index of the
        # requests a labeler could still be given: a claim walks only those, so its
        # cost does not grow with the tasks out with labelers (they hold the highest
        # priorities and were all stepped over in requests_queue).
        "ALTER TABLE requests ADD COLUMN free_slots INTEGER "
        "GENERATED ALWAYS AS (overlap - labeled - in_flight) {generated}",
        "CREATE INDEX requests_claimable ON requests (room, priority DESC, id) "
        "WHERE status = 'open' AND free_slots > 0",
    ],
]

LATEST = len(MIGRATIONS)

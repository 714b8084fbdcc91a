"""Versioned schema. Append new steps; never edit a step that has shipped.

Times are Unix seconds (REAL) so ages and back-off are plain arithmetic.
"""

MIGRATIONS: list[str] = [
    # 1: the walking skeleton
    """
CREATE TABLE device_state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE code_sequences (
    agency_code TEXT NOT NULL,
    day TEXT NOT NULL,
    last INTEGER NOT NULL,
    PRIMARY KEY (agency_code, day)
);
CREATE TABLE dossiers (
    id INTEGER PRIMARY KEY,
    code TEXT NOT NULL UNIQUE,
    procedure_code TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('open', 'submitted', 'signed', 'cancelled')),
    language TEXT NOT NULL DEFAULT 'vi',
    created_at REAL NOT NULL,
    submitted_at REAL,
    signed_at REAL,
    signed_by TEXT
);
CREATE TABLE papers (
    id INTEGER PRIMARY KEY,
    dossier_id INTEGER NOT NULL REFERENCES dossiers(id),
    ordinal INTEGER NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    result_code TEXT UNIQUE,
    pdf_sha256 TEXT,
    pdf_size INTEGER,
    fields_json TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL,
    UNIQUE (dossier_id, ordinal)
);
CREATE TABLE pages (
    id INTEGER PRIMARY KEY,
    paper_id INTEGER NOT NULL REFERENCES papers(id),
    ordinal INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    dpi INTEGER NOT NULL,
    blank INTEGER NOT NULL DEFAULT 0,
    ocr_json TEXT,
    ocr_seconds REAL,
    created_at REAL NOT NULL,
    UNIQUE (paper_id, ordinal)
);
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    dossier_id INTEGER REFERENCES dossiers(id),
    params_json TEXT NOT NULL DEFAULT '{}',
    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
    progress_json TEXT NOT NULL DEFAULT '{}',
    error_key TEXT,
    error_detail TEXT,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    claimed_by INTEGER
);
CREATE INDEX jobs_state ON jobs(state, id);
CREATE TABLE records (
    id INTEGER PRIMARY KEY,
    record_id TEXT NOT NULL UNIQUE,
    dossier_id INTEGER NOT NULL REFERENCES dossiers(id),
    body_json TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY,
    record_id TEXT NOT NULL UNIQUE REFERENCES records(record_id),
    state TEXT NOT NULL CHECK (state IN ('pending', 'sending', 'delivered')),
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    last_attempt_at REAL,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    delivered_at REAL,
    ack_json TEXT
);
CREATE INDEX outbox_state ON outbox(state, id)
""",
    # 2: each page's measured skew, so a crooked scan is flagged to the officer
    """
ALTER TABLE pages ADD COLUMN skew_degrees REAL
""",
    # 3: messages the sync service could not use (malformed, forged, for another
    # device...), moved aside with their reason instead of crashing it or being lost
    """
CREATE TABLE sync_dead_letters (
    id INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    kind TEXT NOT NULL,
    reason TEXT NOT NULL,
    size INTEGER NOT NULL,
    head BLOB NOT NULL,
    at REAL NOT NULL
)
""",
    # 4: the citizen's consent to processing their personal data (Law 91/2025/QH15),
    # one row per dossier: which notice, in which language, when it was accepted
    """
CREATE TABLE consents (
    id INTEGER PRIMARY KEY,
    dossier_id INTEGER NOT NULL UNIQUE REFERENCES dossiers(id),
    notice_version TEXT NOT NULL,
    language TEXT NOT NULL,
    accepted_at REAL NOT NULL
)
""",
    # 5: encryption at rest, the audit trail, erasure and retention (issue 8).
    # key_check: an HMAC of a constant under the key, so a missing or wrong key is
    # found at start instead of after writing data nobody can read. audit_log: append
    # only (triggers refuse UPDATE and DELETE; `appliance audit verify` detects what
    # gets past them through the hash chain and the head kept in audit_head). Dossiers
    # are tombstoned (erased_at, purged_at), never deleted, so codes stay unique and
    # accounted for; public_id is the unguessable name a browser may see.
    """
CREATE TABLE key_check (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    check_value TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE audit_log (
    seq INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    dossier_id INTEGER,
    detail_json TEXT NOT NULL,
    prev_sha256 TEXT NOT NULL,
    sha256 TEXT NOT NULL
);
CREATE INDEX audit_log_dossier ON audit_log(dossier_id, seq);
CREATE TABLE audit_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL,
    sha256 TEXT NOT NULL
);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
ALTER TABLE dossiers ADD COLUMN erased_at REAL;
ALTER TABLE dossiers ADD COLUMN purged_at REAL;
ALTER TABLE dossiers ADD COLUMN public_id TEXT;
UPDATE dossiers SET public_id = lower(hex(randomblob(16))) WHERE public_id IS NULL;
CREATE UNIQUE INDEX dossiers_public_id ON dossiers(public_id)
""",
    # 6: officers enrolled at provisioning (issue 14), each with a PIN stored as a
    # scrypt hash under a device-wide salt (store/officers.py says why one salt), so the
    # keypad's one PIN names who signed in. disabled_at: an officer who left keeps the
    # row (their name is in signed dossiers and the audit log) but no longer opens.
    """
CREATE TABLE officers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    pin_hash TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    disabled_at REAL
)
""",
    # 7: scan-time page flags beyond blank and skew (imaging.flags.PageFlag: too dark,
    # too light, cut-off edges, hand or lid), comma-separated names; '' for none and for
    # pages stored before these checks existed
    """
ALTER TABLE pages ADD COLUMN flags TEXT NOT NULL DEFAULT ''
""",
    # 8: the web's ended sessions (store/sessions.py): a session cookie whose id is
    # here opens nothing, so leaving (reset, submit, logout) ends every copy of it
    """
CREATE TABLE ended_sessions (
    sid TEXT PRIMARY KEY,
    ended_at REAL NOT NULL
)
""",
    # 9: how each dead letter came (outbox.put_dead_letter's `delivery`: sync's MQTT
    # session epoch and the packet id, hashed with the bytes), so a message the broker
    # sends again after its PUBACK was lost is not set aside and counted twice
    """
ALTER TABLE sync_dead_letters ADD COLUMN delivery TEXT NOT NULL DEFAULT '';
CREATE INDEX sync_dead_letters_delivery ON sync_dead_letters(delivery) WHERE delivery != ''
""",
]

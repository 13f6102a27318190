-- The initial Countersign schema.
--
-- Conventions (the PostgreSQL schema follows the same ones, so that both share the queries):
--   * times are INTEGER unix microseconds in UTC; the zero time is NULL;
--   * durations are INTEGER nanoseconds (Go's time.Duration), so they round-trip exactly;
--   * hashes and private keys are BLOB; JSON is TEXT, kept byte for byte, NULL when empty;
--   * string lists are JSON arrays in TEXT, NULL when empty;
--   * booleans are INTEGER 0 or 1.
-- Tables are STRICT so that a value bound with the wrong Go type fails loudly instead of being stored
-- with another type and silently never matching.

CREATE TABLE clients (
    id                          TEXT    NOT NULL PRIMARY KEY,
    name                        TEXT    NOT NULL DEFAULT '',
    grant_types                 TEXT,
    secret_hash                 BLOB,
    auth_method                 TEXT    NOT NULL DEFAULT '',
    jwks                        TEXT,
    jwks_uri                    TEXT    NOT NULL DEFAULT '',
    delivery_mode               TEXT    NOT NULL DEFAULT '',
    notification_endpoint       TEXT    NOT NULL DEFAULT '',
    request_signing_alg         TEXT    NOT NULL DEFAULT '',
    user_code_parameter         INTEGER NOT NULL DEFAULT 0,
    authorization_details_types TEXT,
    scopes                      TEXT,
    audiences                   TEXT,
    id_token_signing_alg        TEXT    NOT NULL DEFAULT '',
    refresh_tokens              INTEGER NOT NULL DEFAULT 0,
    access_token_ttl_ns         INTEGER NOT NULL DEFAULT 0,
    expired_as_access_denied    INTEGER NOT NULL DEFAULT 0,
    created_at                  INTEGER,
    updated_at                  INTEGER
) STRICT;

-- email_lower is the email folded by Go (strings.ToLower), NULL when the email is empty. Folding in Go
-- rather than with lower() gives one behaviour on every engine: SQLite's lower() folds ASCII only.
-- NULLs never collide in a UNIQUE index, so users without an email do not clash.
CREATE TABLE users (
    subject        TEXT NOT NULL PRIMARY KEY,
    email          TEXT NOT NULL DEFAULT '',
    email_lower    TEXT,
    name           TEXT NOT NULL DEFAULT '',
    user_code_hash TEXT NOT NULL DEFAULT '',
    created_at     INTEGER,
    updated_at     INTEGER
) STRICT;
CREATE UNIQUE INDEX users_email_lower ON users (email_lower);

CREATE TABLE devices (
    id         TEXT NOT NULL PRIMARY KEY,
    subject    TEXT NOT NULL REFERENCES users (subject),
    name       TEXT NOT NULL DEFAULT '',
    kind       TEXT NOT NULL DEFAULT '',
    public_key TEXT,
    created_at INTEGER,
    revoked_at INTEGER
) STRICT;
CREATE INDEX devices_subject ON devices (subject, created_at);

CREATE TABLE enrollments (
    code_hash  BLOB NOT NULL PRIMARY KEY,
    subject    TEXT NOT NULL REFERENCES users (subject),
    created_at INTEGER,
    expires_at INTEGER,
    used_at    INTEGER,
    device_id  TEXT NOT NULL DEFAULT ''
) STRICT;

-- A request has a receipt when receipt_decision is not NULL.
CREATE TABLE requests (
    id                    TEXT    NOT NULL PRIMARY KEY,
    auth_req_id_hash      BLOB    NOT NULL UNIQUE,
    client_id             TEXT    NOT NULL,
    client_name           TEXT    NOT NULL DEFAULT '',
    subject               TEXT    NOT NULL REFERENCES users (subject),
    scope                 TEXT,
    audience              TEXT,
    binding_message       TEXT    NOT NULL DEFAULT '',
    authorization_details TEXT,
    acr_values            TEXT,
    delivery_mode         TEXT    NOT NULL DEFAULT '',
    notification_token    TEXT    NOT NULL DEFAULT '',
    callback_auth_req_id  TEXT    NOT NULL DEFAULT '',
    status                TEXT    NOT NULL,
    created_at            INTEGER,
    expires_at            INTEGER,
    interval_ns           INTEGER NOT NULL DEFAULT 0,
    receipt_device_id     TEXT,
    receipt_decision      TEXT,
    receipt_shown_sha256  BLOB,
    receipt_signature     TEXT,
    receipt_decided_at    INTEGER,
    decided_at            INTEGER,
    redeemed_at           INTEGER
) STRICT;
-- The user's pending and unexpired requests (abuse limits, the authenticator's inbox).
CREATE INDEX requests_subject_status ON requests (subject, status, expires_at);
-- The user's recent requests, newest first.
CREATE INDEX requests_subject_created ON requests (subject, created_at);
-- The expiry sweep.
CREATE INDEX requests_status_expires ON requests (status, expires_at);
-- Unfiltered listings, newest first.
CREATE INDEX requests_created ON requests (created_at);

-- Access tokens have no hash (they are found by jti); NULLs never collide in the UNIQUE index.
CREATE TABLE tokens (
    id                    TEXT NOT NULL PRIMARY KEY,
    kind                  TEXT NOT NULL,
    hash                  BLOB UNIQUE,
    client_id             TEXT NOT NULL DEFAULT '',
    subject               TEXT NOT NULL DEFAULT '',
    scope                 TEXT,
    audience              TEXT,
    authorization_details TEXT,
    request_id            TEXT NOT NULL DEFAULT '',
    family_id             TEXT NOT NULL DEFAULT '',
    issued_at             INTEGER,
    expires_at            INTEGER,
    used_at               INTEGER,
    revoked_at            INTEGER
) STRICT;
-- Only refresh-token families are looked up; queries repeat the family_id <> '' term so that both
-- SQLite and PostgreSQL can use this partial index.
CREATE INDEX tokens_family ON tokens (family_id) WHERE family_id <> '';
CREATE INDEX tokens_expires ON tokens (expires_at);

CREATE TABLE nonces (
    id         TEXT NOT NULL PRIMARY KEY,
    expires_at INTEGER
) STRICT, WITHOUT ROWID;
CREATE INDEX nonces_expires ON nonces (expires_at);

CREATE TABLE signing_keys (
    id           TEXT NOT NULL PRIMARY KEY,
    algorithm    TEXT NOT NULL DEFAULT '',
    key_use      TEXT NOT NULL DEFAULT '',
    status       TEXT NOT NULL DEFAULT '',
    private_key  BLOB,
    created_at   INTEGER,
    activated_at INTEGER,
    retired_at   INTEGER
) STRICT;

-- AUTOINCREMENT: audit IDs are handed out for paging and must never be reused, even if old events are
-- purged one day. With a single writer, IDs also increase in commit order, so paging by ID never skips
-- an event that commits late.
CREATE TABLE audit_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    occurred_at INTEGER,
    event_type  TEXT NOT NULL DEFAULT '',
    subject     TEXT NOT NULL DEFAULT '',
    client_id   TEXT NOT NULL DEFAULT '',
    request_id  TEXT NOT NULL DEFAULT '',
    device_id   TEXT NOT NULL DEFAULT '',
    detail      TEXT
) STRICT;
CREATE INDEX audit_events_subject ON audit_events (subject, id);
CREATE INDEX audit_events_request ON audit_events (request_id, id);

-- next_attempt_at NULL means due at once; lease_until NULL means not leased.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    kind            TEXT    NOT NULL DEFAULT '',
    request_id      TEXT    NOT NULL DEFAULT '',
    target          TEXT    NOT NULL DEFAULT '',
    payload         TEXT,
    status          TEXT    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    lease_until     INTEGER,
    last_error      TEXT    NOT NULL DEFAULT '',
    created_at      INTEGER,
    delivered_at    INTEGER
) STRICT;
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);

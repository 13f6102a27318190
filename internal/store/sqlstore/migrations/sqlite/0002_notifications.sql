-- Notifications and step-up verification: how to reach people (phone, channels, Web Push
-- subscriptions), number matching and passkeys on requests, and WebAuthn credentials.
--
-- Same conventions as 0001: STRICT tables, times as INTEGER unix microseconds (zero time NULL),
-- booleans as INTEGER 0/1, string lists as JSON arrays in TEXT (NULL when empty), JSON as TEXT kept
-- byte for byte. Databases created by 0001 already hold data, so every added column has a default
-- (or is nullable) and the existing rows need no rewrite beyond the receipt flags below.

ALTER TABLE users ADD COLUMN phone TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN channels TEXT;

ALTER TABLE requests ADD COLUMN verification_code TEXT NOT NULL DEFAULT '';
ALTER TABLE requests ADD COLUMN require_user_verification INTEGER NOT NULL DEFAULT 0;
ALTER TABLE requests ADD COLUMN reminded_at INTEGER;
-- Receipt flags, like the other receipt_* columns, are NULL exactly when the request has no receipt.
ALTER TABLE requests ADD COLUMN receipt_reported INTEGER;
ALTER TABLE requests ADD COLUMN receipt_user_verified INTEGER;
-- Receipts written before this migration were neither reported nor user-verified.
UPDATE requests SET receipt_reported = 0, receipt_user_verified = 0 WHERE receipt_decision IS NOT NULL;

-- A device has at most one Web Push subscription. The foreign key names the device and its owner
-- together, so that a subscription can never be filed under a user who does not own the device (the
-- notifier pushes a user's requests to every subscription listed under that user). It needs the
-- UNIQUE index on devices (id, subject): id alone is already unique, so the index changes nothing
-- else. Devices are revoked, not deleted; should a device row ever be deleted, its subscription goes
-- with it.
CREATE UNIQUE INDEX devices_id_subject ON devices (id, subject);
CREATE TABLE push_subscriptions (
    device_id  TEXT NOT NULL PRIMARY KEY,
    subject    TEXT NOT NULL,
    endpoint   TEXT NOT NULL DEFAULT '',
    p256dh     TEXT NOT NULL DEFAULT '',
    auth       TEXT NOT NULL DEFAULT '',
    created_at INTEGER,
    FOREIGN KEY (device_id, subject) REFERENCES devices (id, subject) ON DELETE CASCADE
) STRICT;
-- The user's subscriptions, oldest first (device_id breaks ties, so the listing needs no sort).
CREATE INDEX push_subscriptions_subject ON push_subscriptions (subject, created_at, device_id);

-- id is the WebAuthn credential ID (base64url), unique across users. credential is the verifier's
-- JSON record, stored byte for byte. device_id is informational ('' for none), like enrollments'.
CREATE TABLE passkeys (
    id           TEXT NOT NULL PRIMARY KEY,
    subject      TEXT NOT NULL REFERENCES users (subject),
    device_id    TEXT NOT NULL DEFAULT '',
    name         TEXT NOT NULL DEFAULT '',
    credential   TEXT,
    created_at   INTEGER,
    last_used_at INTEGER
) STRICT;
-- The user's passkeys, oldest first (id breaks ties, so the listing needs no sort).
CREATE INDEX passkeys_subject ON passkeys (subject, created_at, id);

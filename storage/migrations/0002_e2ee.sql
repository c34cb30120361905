-- End-to-end encryption support: device keys, one-time and fallback keys, cross-signing,
-- device-list change tracking, to-device messages, and server-side key backup.
-- The server stores these as opaque signed JSON: it never sees message plaintext.

CREATE TABLE e2e_device_keys (
    user_id    text NOT NULL,               -- the device's owner
    device_id  text NOT NULL,               -- the device
    key_json   jsonb NOT NULL,              -- the signed DeviceKeys object, exactly as uploaded
    updated_ts bigint NOT NULL,             -- last upload, ms since the epoch
    PRIMARY KEY (user_id, device_id),
    FOREIGN KEY (user_id, device_id) REFERENCES devices ON DELETE CASCADE
);

CREATE TABLE e2e_one_time_keys (
    user_id   text NOT NULL,                -- the device's owner
    device_id text NOT NULL,                -- the device the key belongs to
    algorithm text NOT NULL,                -- e.g. signed_curve25519
    key_id    text NOT NULL,                -- the part after the colon in "algorithm:key_id"
    key_json  jsonb NOT NULL,               -- the key (string or signed object) as uploaded
    PRIMARY KEY (user_id, device_id, algorithm, key_id),
    FOREIGN KEY (user_id, device_id) REFERENCES devices ON DELETE CASCADE
);

CREATE TABLE e2e_fallback_keys (
    user_id   text NOT NULL,                -- the device's owner
    device_id text NOT NULL,                -- the device
    algorithm text NOT NULL,                -- one fallback key per algorithm
    key_id    text NOT NULL,                -- its key ID
    key_json  jsonb NOT NULL,               -- the signed key as uploaded
    used      boolean NOT NULL DEFAULT false, -- handed out by a claim since it was uploaded
    PRIMARY KEY (user_id, device_id, algorithm),
    FOREIGN KEY (user_id, device_id) REFERENCES devices ON DELETE CASCADE
);

CREATE TABLE e2e_cross_signing_keys (
    user_id    text NOT NULL,               -- the key's owner
    key_type   text NOT NULL,               -- master, self_signing or user_signing
    key_json   jsonb NOT NULL,              -- the CrossSigningKey object as uploaded
    updated_ts bigint NOT NULL,             -- last upload, ms since the epoch
    PRIMARY KEY (user_id, key_type)
);

CREATE TABLE e2e_signatures (
    target_user_id text NOT NULL,           -- owner of the signed key
    target_key_id  text NOT NULL,           -- device ID, or the cross-signing public key
    signer_user_id text NOT NULL,           -- who signed
    signer_key_id  text NOT NULL,           -- "ed25519:<signing key>"
    signature      text NOT NULL,           -- the unpadded base64 signature
    PRIMARY KEY (target_user_id, target_key_id, signer_user_id, signer_key_id)
);

CREATE TABLE device_list_changes (
    stream_id bigint NOT NULL,              -- device-list stream position of the change
    user_id   text NOT NULL,                -- the user whose devices or cross-signing keys changed
    PRIMARY KEY (stream_id, user_id)
);
CREATE INDEX device_list_changes_user ON device_list_changes (user_id, stream_id);

CREATE TABLE to_device_inbox (
    stream_id  bigint NOT NULL,             -- to-device stream position; deleted once acknowledged
    user_id    text NOT NULL,               -- recipient
    device_id  text NOT NULL,               -- recipient device
    message    jsonb NOT NULL,              -- {sender, type, content} as delivered in /sync
    PRIMARY KEY (user_id, device_id, stream_id),
    FOREIGN KEY (user_id, device_id) REFERENCES devices ON DELETE CASCADE
);

CREATE TABLE to_device_transactions (
    user_id    text NOT NULL,               -- sender
    device_id  text NOT NULL,               -- sender's device (idempotency is per device)
    txn_id     text NOT NULL,               -- the client's transaction ID
    created_ts bigint NOT NULL,             -- for expiring old entries
    PRIMARY KEY (user_id, device_id, txn_id)
);

CREATE TABLE e2e_room_key_versions (
    user_id   text NOT NULL,                -- the backup's owner
    version   bigint NOT NULL,              -- the version number, handed out as a string
    algorithm text NOT NULL,                -- e.g. m.megolm_backup.v1.curve25519-aes-sha2
    auth_data jsonb NOT NULL,               -- algorithm-specific, signed by the client
    etag      bigint NOT NULL DEFAULT 0,    -- changes whenever the stored keys change
    deleted   boolean NOT NULL DEFAULT false, -- deleted versions keep their number
    PRIMARY KEY (user_id, version)
);

CREATE TABLE e2e_room_keys (
    user_id             text NOT NULL,      -- the backup's owner
    version             bigint NOT NULL,    -- the backup version the key belongs to
    room_id             text NOT NULL,      -- the room of the Megolm session
    session_id          text NOT NULL,      -- the Megolm session ID
    first_message_index integer NOT NULL,   -- lower is better when replacing
    forwarded_count     integer NOT NULL,   -- lower is better when replacing
    is_verified         boolean NOT NULL,   -- verified beats unverified when replacing
    session_data        jsonb NOT NULL,     -- the encrypted session, opaque to the server
    PRIMARY KEY (user_id, version, room_id, session_id)
);

-- Streams whose rows are deleted (to-device messages once acknowledged) cannot recover their
-- position from max(stream_id) after a restart; they record their high-water mark here.
CREATE TABLE stream_watermarks (
    stream   text PRIMARY KEY,              -- the stream's name, e.g. to_device
    position bigint NOT NULL                -- the highest position ever written
);

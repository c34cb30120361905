-- The initial schema: accounts, rooms, the event DAG with state snapshots, and the streams
-- that /sync reads. Every column says what it holds.

CREATE TABLE users (
    user_id       text PRIMARY KEY,          -- full Matrix user ID, @localpart:server
    password_hash text,                      -- argon2id hash; NULL means no password login
    is_admin      boolean NOT NULL DEFAULT false, -- server administrator
    deactivated   boolean NOT NULL DEFAULT false, -- deactivated accounts keep their name forever
    created_ts    bigint NOT NULL            -- registration time, ms since the epoch
);

CREATE TABLE profiles (
    user_id     text PRIMARY KEY REFERENCES users ON DELETE CASCADE, -- the profile's owner
    displayname text,                        -- m.room.member displayname default
    avatar_url  text                         -- mxc:// URI
);

CREATE TABLE devices (
    user_id      text NOT NULL REFERENCES users ON DELETE CASCADE, -- the device's owner
    device_id    text NOT NULL,              -- client-chosen or generated device ID
    display_name text,                       -- human-readable name shown to other users
    last_seen_ts bigint,                     -- last authenticated request, ms since the epoch
    last_seen_ip text,                       -- address of that request
    created_ts   bigint NOT NULL,            -- when the device first logged in
    PRIMARY KEY (user_id, device_id)
);

CREATE TABLE access_tokens (
    token_hash bytea PRIMARY KEY,            -- SHA-256 of the token; the token itself is never stored
    user_id    text NOT NULL,                -- the authenticated user
    device_id  text NOT NULL,                -- the device the token belongs to
    created_ts bigint NOT NULL,              -- issue time, ms since the epoch
    FOREIGN KEY (user_id, device_id) REFERENCES devices ON DELETE CASCADE
);
CREATE INDEX access_tokens_device ON access_tokens (user_id, device_id);

CREATE TABLE rooms (
    room_id      text PRIMARY KEY,           -- !room ID
    room_version text NOT NULL,              -- the room version identifier, e.g. '12'
    creator      text NOT NULL,              -- sender of m.room.create
    created_ts   bigint NOT NULL,            -- when this server learnt of the room
    is_public    boolean NOT NULL DEFAULT false -- published in the public room directory
);

CREATE TABLE room_aliases (
    alias      text PRIMARY KEY,             -- #alias:server
    room_id    text NOT NULL REFERENCES rooms ON DELETE CASCADE, -- the room it points to
    creator    text NOT NULL                 -- who created the alias (may delete it)
);
CREATE INDEX room_aliases_room ON room_aliases (room_id);

-- The DAG. One row per event this server holds, local or remote.
CREATE TABLE events (
    event_id         text PRIMARY KEY,       -- $reference-hash event ID
    room_id          text NOT NULL,          -- the room the event belongs to
    stream_ordering  bigint UNIQUE,          -- global position /sync paginates by; NULL for outliers
    depth            bigint NOT NULL,        -- the event's depth in the DAG (topological order)
    type             text NOT NULL,          -- event type
    state_key        text,                   -- NULL for message events
    sender           text NOT NULL,          -- user ID of the sender
    origin_server_ts bigint NOT NULL,        -- sender's clock, ms since the epoch
    json             text NOT NULL,          -- the full signed PDU, canonical JSON, as received
    state_group      bigint,                 -- state AFTER this event (NULL for outliers and rejected)
    replaces_state   text,                   -- the state event this one replaced (prev_content)
    rejection_reason text,                   -- set when the event failed authorization
    soft_failed      boolean NOT NULL DEFAULT false, -- passed auth but not applied to current state
    outlier          boolean NOT NULL DEFAULT false  -- held for auth chains, not part of the timeline
);
CREATE INDEX events_room_stream ON events (room_id, stream_ordering);
CREATE INDEX events_room_depth ON events (room_id, depth, stream_ordering);
CREATE INDEX events_membership ON events (state_key, stream_ordering) WHERE type = 'm.room.member';

CREATE TABLE event_edges (
    event_id      text NOT NULL,             -- the child event
    prev_event_id text NOT NULL,             -- one of its prev_events
    PRIMARY KEY (event_id, prev_event_id)
);
CREATE INDEX event_edges_prev ON event_edges (prev_event_id);

CREATE TABLE event_auth_edges (
    event_id      text NOT NULL,             -- the authorized event
    auth_event_id text NOT NULL,             -- one of its auth_events
    PRIMARY KEY (event_id, auth_event_id)
);

CREATE TABLE forward_extremities (
    room_id  text NOT NULL,                  -- the room
    event_id text NOT NULL,                  -- an event with no children yet: next event's prev
    PRIMARY KEY (room_id, event_id)
);

CREATE TABLE event_redactions (
    redaction_id text PRIMARY KEY,           -- the m.room.redaction event
    redacts      text NOT NULL               -- the event it redacts
);
CREATE INDEX event_redactions_redacts ON event_redactions (redacts);

-- State snapshots stored as deltas: a group is its parent's state plus its own entries,
-- so storage grows with state changes, not with events times state size.
CREATE TABLE state_groups (
    state_group bigserial PRIMARY KEY,       -- snapshot ID
    room_id     text NOT NULL,               -- the room whose state this is
    prev_group  bigint REFERENCES state_groups, -- parent snapshot; NULL for a full snapshot
    delta_depth integer NOT NULL             -- hops to the nearest full snapshot (bounds reads)
);

CREATE TABLE state_group_entries (
    state_group bigint NOT NULL REFERENCES state_groups, -- the snapshot
    type        text NOT NULL,               -- state event type
    state_key   text NOT NULL,               -- state key
    event_id    text NOT NULL,               -- the state event in force for (type, state_key)
    PRIMARY KEY (state_group, type, state_key)
);

-- Materialized current state and membership for fast reads.
CREATE TABLE current_state (
    room_id   text NOT NULL,                 -- the room
    type      text NOT NULL,                 -- state event type
    state_key text NOT NULL,                 -- state key
    event_id  text NOT NULL,                 -- the current event for (type, state_key)
    PRIMARY KEY (room_id, type, state_key)
);

CREATE TABLE room_memberships (
    room_id         text NOT NULL,           -- the room
    user_id         text NOT NULL,           -- the member (state_key of m.room.member)
    membership      text NOT NULL,           -- join, invite, leave, ban or knock
    event_id        text NOT NULL,           -- the current m.room.member event
    stream_ordering bigint NOT NULL,         -- its stream position
    forgotten       boolean NOT NULL DEFAULT false, -- the user forgot the room after leaving
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX room_memberships_user ON room_memberships (user_id, membership);

CREATE TABLE client_transactions (
    user_id   text NOT NULL,                 -- the sender
    device_id text NOT NULL,                 -- the device that sent it (idempotency is per device)
    txn_id    text NOT NULL,                 -- the client's transaction ID from the path
    event_id  text NOT NULL,                 -- the event the first request created
    created_ts bigint NOT NULL,              -- for expiring old entries
    PRIMARY KEY (user_id, device_id, txn_id)
);

CREATE TABLE filters (
    user_id   text NOT NULL,                 -- the filter's owner
    filter_id bigserial,                     -- ID handed to the client
    filter    jsonb NOT NULL,                -- the filter definition as uploaded
    PRIMARY KEY (user_id, filter_id)
);

CREATE TABLE account_data (
    user_id   text NOT NULL,                 -- the owner
    room_id   text NOT NULL DEFAULT '',      -- '' for global account data
    type      text NOT NULL,                 -- account data type
    content   jsonb NOT NULL,                -- the content as set
    stream_id bigint NOT NULL,               -- account data stream position of the last change
    PRIMARY KEY (user_id, room_id, type)
);
CREATE INDEX account_data_stream ON account_data (user_id, stream_id);

CREATE TABLE receipts (
    room_id      text NOT NULL,              -- the room
    receipt_type text NOT NULL,              -- m.read or m.read.private
    user_id      text NOT NULL,              -- who read
    thread_id    text NOT NULL DEFAULT '',   -- '' for unthreaded receipts
    event_id     text NOT NULL,              -- the event read up to
    data         jsonb NOT NULL,             -- {ts, thread_id?}
    stream_id    bigint NOT NULL,            -- receipt stream position
    PRIMARY KEY (room_id, receipt_type, user_id, thread_id)
);
CREATE INDEX receipts_stream ON receipts (room_id, stream_id);

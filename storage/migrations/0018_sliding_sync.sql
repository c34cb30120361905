-- Simplified Sliding Sync (MSC4186): connections and the positions handed out on them.

-- A connection: one device's stream of requests under one `conn_id`. A request without a
-- `pos` replaces the device's connection of that `conn_id` (its positions go with it).
CREATE TABLE sliding_sync_connections (
    id           bigserial PRIMARY KEY,
    user_id      text NOT NULL,
    device_id    text NOT NULL,
    conn_id      text NOT NULL,
    secret       text NOT NULL,           -- random, part of every pos: another server's is unknown
    created_ts   bigint NOT NULL,         -- ms since the epoch
    last_used_ts bigint NOT NULL,         -- ms since the epoch, kept to the hour; idle ones expire
    FOREIGN KEY (user_id, device_id) REFERENCES devices ON DELETE CASCADE,
    -- Checked at the end of each statement: one statement replaces a connection (deletes the
    -- old row and inserts the new one, in no set order).
    UNIQUE (user_id, device_id, conn_id) DEFERRABLE
);

-- What the connection had been sent when a response handed out this position (JSON of
-- `homeserver.protocol.sliding_sync.ConnectionState`). Written once, never updated.
CREATE TABLE sliding_sync_positions (
    id            bigserial PRIMARY KEY,
    connection_id bigint NOT NULL REFERENCES sliding_sync_connections ON DELETE CASCADE,
    state         text NOT NULL
);
CREATE INDEX sliding_sync_positions_connection ON sliding_sync_positions (connection_id, id);

-- The newest event of each room that moves it up a sliding sync list (its `bump_stamp`):
-- one index probe per room. The types are protocol/sliding_sync.py's BUMP_TYPES.
CREATE INDEX events_bump_stamp ON events (room_id, stream_ordering)
WHERE type IN ('m.room.create', 'm.room.message', 'm.room.encrypted', 'm.sticker',
               'm.call.invite', 'm.poll.start', 'm.beacon_info')
  AND stream_ordering IS NOT NULL AND rejection_reason IS NULL AND NOT soft_failed;

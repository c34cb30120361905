-- Rooms a server admin blocked (Synapse's admin API "Block Room", and `block` of "Delete
-- Room"): local users may neither join them nor be invited into them. A room may be blocked
-- before this server ever saw it, and the row outlives the room's purge, so it refers to no
-- other table.

CREATE TABLE blocked_rooms (
    room_id    text PRIMARY KEY,   -- the blocked room (perhaps unknown here, or purged)
    user_id    text NOT NULL,      -- the server admin who blocked it
    blocked_ts bigint NOT NULL     -- when it was blocked, ms since the epoch
);

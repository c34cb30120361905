-- Reports of events, rooms and users (spec "Reporting content"), kept for the server's
-- administrators. Written once; no API reads them yet (README "Reports").
CREATE TABLE reports (
    id           bigserial PRIMARY KEY,   -- the report's number, in the order received
    received_ts  bigint NOT NULL,         -- ms since the epoch
    reporter     text NOT NULL REFERENCES users, -- the local user who reported
    kind         text NOT NULL CHECK (kind IN ('event', 'room', 'user')), -- what is reported
    room_id      text,                    -- the room reported, or the reported event's room
    event_id     text,                    -- the event reported (kind 'event')
    target_user  text,                    -- the user reported, or the reported event's sender
    reason       text NOT NULL            -- the reporter's words, as given (may be empty)
);
CREATE INDEX reports_reporter ON reports (reporter, id);
CREATE INDEX reports_target_user ON reports (target_user, id) WHERE target_user IS NOT NULL;
CREATE INDEX reports_room ON reports (room_id, id) WHERE room_id IS NOT NULL;

-- Guest accounts (spec "Guest Access"): registered with `kind=guest`, no password, limited to
-- the spec's endpoints; upgrading one to a full account clears the flag and keeps the user ID.
ALTER TABLE users ADD COLUMN is_guest boolean NOT NULL DEFAULT false; -- a guest account

-- The room's current state after an event from another server whose arrival state resolution
-- merged with the room's other heads (the event sat on one branch of a fork): /sync reads the
-- current state as of a stream position, and whether resolution moved it, from here.

ALTER TABLE events ADD COLUMN current_state_group bigint; -- the room's current state snapshot after this event, when resolution on its arrival moved the current state or left it other than state_group (NULL: state_group is it)

CREATE INDEX events_resolved_positions ON events (room_id, stream_ordering)
    WHERE current_state_group IS NOT NULL;

-- Presence, room-event full-text search and the indexes the room and user directories read.

CREATE TABLE presence (
    user_id        text PRIMARY KEY,         -- the user whose presence this is
    state          text NOT NULL,            -- online, unavailable or offline, as last set
    status_msg     text,                     -- free-text status; NULL when none is set
    last_active_ts bigint NOT NULL,          -- the user's last activity, ms since the epoch
    stream_id      bigint NOT NULL           -- presence stream position of the last visible change
);
CREATE INDEX presence_stream ON presence (stream_id);
-- The idle sweep looks only at users who are not offline yet.
CREATE INDEX presence_active ON presence (last_active_ts) WHERE state <> 'offline';

-- One row per searchable event (m.room.message body, m.room.name name, m.room.topic topic);
-- encrypted events carry no plaintext and are never indexed.
CREATE TABLE event_search (
    event_id        text PRIMARY KEY,        -- the indexed event
    room_id         text NOT NULL,           -- its room, to restrict a search to the user's rooms
    stream_ordering bigint NOT NULL,         -- its stream position, for "recent" order and paging
    key             text NOT NULL,           -- the field indexed: content.body, content.name or content.topic
    vector          tsvector NOT NULL        -- to_tsvector('english', the field's text)
);
CREATE INDEX event_search_vector ON event_search USING gin (vector);
CREATE INDEX event_search_room ON event_search (room_id, stream_ordering);

-- The content of an event's JSON as jsonb, or NULL when PostgreSQL cannot hold it as jsonb
-- (a \u0000 escape), so one odd event never breaks a directory listing.
CREATE FUNCTION moot_event_content(event_json text) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN (event_json::jsonb) -> 'content';
EXCEPTION WHEN others THEN
    RETURN NULL;
END;
$$;

-- The user directory finds rooms with a public join rule or world-readable history.
CREATE INDEX current_state_visibility ON current_state (type, room_id)
    WHERE state_key = '' AND type IN ('m.room.join_rules', 'm.room.history_visibility');
CREATE INDEX room_memberships_joined ON room_memberships (room_id, user_id)
    WHERE membership = 'join';

-- Index the messages, names and topics persisted before this migration.
INSERT INTO event_search (event_id, room_id, stream_ordering, key, vector)
SELECT event_id, room_id, stream_ordering, key, to_tsvector('english', text)
FROM (
    SELECT e.event_id, e.room_id, e.stream_ordering,
           CASE e.type WHEN 'm.room.message' THEN 'content.body'
                       WHEN 'm.room.name' THEN 'content.name'
                       ELSE 'content.topic' END AS key,
           moot_event_content(e.json) ->> CASE e.type WHEN 'm.room.message' THEN 'body'
                                                      WHEN 'm.room.name' THEN 'name'
                                                      ELSE 'topic' END AS text
    FROM events e
    WHERE e.type IN ('m.room.message', 'm.room.name', 'm.room.topic')
      AND e.stream_ordering IS NOT NULL AND e.rejection_reason IS NULL AND NOT e.soft_failed
      AND (e.type = 'm.room.message' OR e.state_key = '')
) indexed
WHERE text IS NOT NULL;

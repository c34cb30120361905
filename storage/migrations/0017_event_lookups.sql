-- Indexes for looking events up by what they relate to and by time.

-- Event relationships (client-server-api "Forming relationships between events"): finding
-- the children of an event by the `m.relates_to.event_id` of their content, for
-- GET /rooms/{roomId}/relations/{eventId}. Only events that relate to something are indexed.

CREATE INDEX events_relates_to ON events (
    (moot_event_content(json) -> 'm.relates_to' ->> 'event_id'), stream_ordering
) WHERE moot_event_content(json) -> 'm.relates_to' ->> 'event_id' IS NOT NULL;

-- The threads of a room by their latest reply, for GET /rooms/{roomId}/threads.
CREATE INDEX events_thread_replies ON events (room_id, stream_ordering)
WHERE moot_event_content(json) -> 'm.relates_to' ->> 'rel_type' = 'm.thread';

-- The event of a room nearest a point in time, for GET /rooms/{roomId}/timestamp_to_event.
CREATE INDEX events_room_time ON events (room_id, origin_server_ts)
WHERE stream_ordering IS NOT NULL;

-- Notifications stored once per event and set of actions, with the users they notify, instead
-- of one row per user: a message in a room of 256 wrote 255 rows, which was most of the cost of
-- sending it. Unread counts are kept in memory by the writing process and read from here after
-- a restart or a read receipt.
CREATE TABLE push_actions (
    room_id         text NOT NULL,           -- the room of the event
    event_id        text NOT NULL,           -- the event that notified
    stream_ordering bigint NOT NULL,         -- the event's stream position (orders and pages)
    actions         jsonb NOT NULL,          -- the actions of the rule that matched
    highlight       boolean NOT NULL,        -- the actions set the highlight tweak
    ts              bigint NOT NULL,         -- when the notification was made, ms since the epoch
    user_ids        text[] NOT NULL,         -- the local users these actions notify
    part            smallint NOT NULL,       -- tells apart the rows of one event (0, 1, ...)
    PRIMARY KEY (stream_ordering, part)
);
CREATE INDEX push_actions_room ON push_actions (room_id, stream_ordering);

INSERT INTO push_actions
    (room_id, event_id, stream_ordering, actions, highlight, ts, user_ids, part)
SELECT room_id, event_id, stream_ordering, actions, bool_or(highlight), min(ts),
       array_agg(user_id ORDER BY user_id),
       row_number() OVER (PARTITION BY stream_ordering ORDER BY actions) - 1
FROM push_notifications GROUP BY room_id, event_id, stream_ordering, actions;

DROP TABLE push_notifications;

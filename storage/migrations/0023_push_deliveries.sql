-- The durable push gateway queue (push-gateway-api "POST /_matrix/push/v1/notify"): what this
-- server still owes each `http` pusher, and each pusher's retry state. A notification's rows
-- are written by the transaction that stores the notification (push_actions), so an event a
-- client was told is sent cannot lose its push; the sender deletes a row once the gateway
-- answered it. Deleting a pusher (by its owner, its device's deletion or the gateway's
-- `rejected`) drops what was queued for it.

CREATE TABLE push_deliveries (
    position    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- queue order; never reused
    user_id     text   NOT NULL,  -- the pusher's owner, the notified user
    app_id      text   NOT NULL,  -- the pusher's app_id
    pushkey     text   NOT NULL,  -- the pusher's pushkey
    event_id    text,             -- the event notified about; NULL for a badge-only update
    room_id     text,             -- the event's room; NULL for a badge-only update
    actions     jsonb,            -- the actions of the rule that matched (tweaks); NULL for a badge
    enqueued_ts bigint NOT NULL DEFAULT (extract(epoch FROM now()) * 1000)::bigint,  -- ms: when the queueing transaction began
    FOREIGN KEY (user_id, app_id, pushkey) REFERENCES pushers ON DELETE CASCADE
);
-- One pusher's queue, oldest first (the sender reads it in this order).
CREATE INDEX push_deliveries_pusher ON push_deliveries (user_id, app_id, pushkey, position);

-- A pusher's retry state, so that a restart neither forgets a backoff nor hammers a gateway
-- that was down.
ALTER TABLE pushers
    ADD COLUMN failures integer NOT NULL DEFAULT 0,  -- consecutive failed deliveries (0: healthy)
    ADD COLUMN retry_at bigint;                      -- ms: nothing is sent before this; NULL when healthy

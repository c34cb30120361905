-- The durable outbound federation queue: what this server still owes each other server, and
-- each destination's retry state. A row is written in the transaction that makes its event or
-- EDU durable and deleted in the transaction that records its delivery, so nothing a client was
-- told succeeded can be lost between the two.

-- PDUs queued per destination. The PDU itself is not copied: its JSON is events.json.
CREATE TABLE federation_outbox_pdus (
    destination text   NOT NULL,  -- the server name to send it to
    position    bigint GENERATED ALWAYS AS IDENTITY,  -- queue order; never reused, so batches (and their txnIds) are unique
    event_id    text   NOT NULL REFERENCES events ON DELETE CASCADE,  -- the PDU to send
    enqueued_ts bigint NOT NULL DEFAULT (extract(epoch FROM now()) * 1000)::bigint,  -- ms: when the queueing transaction began
    PRIMARY KEY (destination, position)
);

-- EDUs queued per destination; ephemeral data has no other home, so its content lives here.
CREATE TABLE federation_outbox_edus (
    destination text   NOT NULL,  -- the server name to send it to
    position    bigint GENERATED ALWAYS AS IDENTITY,  -- queue order; never reused
    edu_type    text   NOT NULL,  -- the EDU's edu_type (m.typing, m.receipt, m.direct_to_device ...)
    content     jsonb  NOT NULL,  -- the EDU's content, sent as is
    enqueued_ts bigint NOT NULL DEFAULT (extract(epoch FROM now()) * 1000)::bigint,  -- ms: when the queueing transaction began
    PRIMARY KEY (destination, position)
);

-- Per-destination delivery state, so that a restart neither forgets a backoff nor hammers a
-- server that was down.
CREATE TABLE federation_destinations (
    destination     text    PRIMARY KEY,  -- the server name
    failures        integer NOT NULL,     -- consecutive failed transactions since the last success (0: healthy)
    retry_at        bigint,               -- ms: no transaction is sent before this; NULL when healthy
    last_success_ts bigint                -- ms: when a transaction to it last succeeded; NULL if none has
);

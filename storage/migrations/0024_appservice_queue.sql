-- The durable outbound queue of every application service (application-service-api
-- "Pushing events"): what this server still owes each appservice, the one transaction it has
-- put together and not yet seen acknowledged, and each appservice's retry state. Rows are
-- queued in the transaction that makes their event durable; a transaction is built from the
-- oldest rows in the same database transaction that deletes them, and stored whole, so a retry
-- (also after a restart) sends the very same body under the same txnId.

-- Events and ephemeral data (typing, receipts, presence) queued per appservice, in one order.
CREATE TABLE appservice_queue (
    appservice_id text   NOT NULL,  -- the registration's `id`
    position      bigint GENERATED ALWAYS AS IDENTITY,  -- queue order; never reused
    event_id      text   REFERENCES events ON DELETE CASCADE,  -- a room event to send (its JSON is events.json), or NULL
    ephemeral     jsonb,            -- an ephemeral event to send as is, or NULL
    enqueued_ts   bigint NOT NULL DEFAULT (extract(epoch FROM now()) * 1000)::bigint,  -- ms: when the queueing transaction began
    PRIMARY KEY (appservice_id, position),
    CHECK ((event_id IS NULL) <> (ephemeral IS NULL))
);

-- The transaction built for an appservice and not yet acknowledged: at most one each.
CREATE TABLE appservice_txns (
    appservice_id text    PRIMARY KEY,  -- the registration's `id`
    txn_id        bigint  NOT NULL,     -- the {txnId} it is PUT under, the same on every retry
    body          text    NOT NULL,     -- the JSON body, sent byte for byte on every retry
    events        integer NOT NULL,     -- how many room events the body holds
    ephemeral     integer NOT NULL,     -- how many ephemeral events the body holds
    oldest_ts     bigint  NOT NULL      -- ms: when its oldest item was queued
);

-- Per-appservice delivery state, so that a restart neither reuses a txnId nor forgets a
-- backoff.
CREATE TABLE appservice_states (
    appservice_id   text    PRIMARY KEY,       -- the registration's `id`
    last_txn_id     bigint  NOT NULL,          -- the newest txnId given out; the next is one more
    failures        integer NOT NULL DEFAULT 0,  -- consecutive failed attempts (0: healthy)
    retry_at        bigint,                    -- ms: no attempt before this; NULL when healthy
    last_success_ts bigint                     -- ms: when it last acknowledged a transaction
);

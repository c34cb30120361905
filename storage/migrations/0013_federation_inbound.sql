-- Transactions received from other servers, so that a retried PUT /send is answered with the
-- first answer instead of being processed twice (server-server-api.md "Transactions").

CREATE TABLE federation_inbound_txns (
    origin      text NOT NULL,               -- the sending server's name
    txn_id      text NOT NULL,               -- its transaction ID (unique per origin)
    response    jsonb NOT NULL,              -- what we answered: {"pdus": {event_id: result}}
    received_ts bigint NOT NULL,             -- ms since the epoch, for pruning old entries
    PRIMARY KEY (origin, txn_id)
);

-- A client transaction is identified by its ID *and* the request it was sent with (spec:
-- "Transaction identifiers"): the same txn ID reused for another room, event type or
-- redaction is a new request, not a retransmission.
ALTER TABLE client_transactions ADD COLUMN scope text NOT NULL DEFAULT '';
COMMENT ON COLUMN client_transactions.scope IS
    'the request the txn ID belongs to, e.g. send/<room>/<type> or redact/<room>/<event>';
ALTER TABLE client_transactions DROP CONSTRAINT client_transactions_pkey;
ALTER TABLE client_transactions ADD PRIMARY KEY (user_id, device_id, txn_id, scope);

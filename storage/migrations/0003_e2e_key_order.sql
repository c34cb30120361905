-- One-time keys are handed out in the order they were uploaded (keys.yaml, /keys/claim): a
-- client that outgrows its key store forgets its oldest private keys first, so serving the
-- oldest public keys first keeps a claim from ever returning a key the device has discarded.

ALTER TABLE e2e_one_time_keys
    ADD COLUMN upload_seq bigint GENERATED ALWAYS AS IDENTITY; -- upload order, oldest first
CREATE INDEX e2e_one_time_keys_order ON e2e_one_time_keys (user_id, device_id, algorithm, upload_seq);

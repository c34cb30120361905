-- Other servers' signing keys, for verifying their federation requests and events. Nothing is
-- stored here before its server's self-signature on it has been checked (and, for keys learnt
-- through a notary, the notary's signature too).
CREATE TABLE server_verify_keys (
    server_name    text   NOT NULL,  -- the server that owns the key
    key_id         text   NOT NULL,  -- algorithm:version, e.g. ed25519:a_AbCd
    verify_key     text   NOT NULL,  -- the public key, unpadded base64
    valid_until_ts bigint NOT NULL,  -- ms: signatures made before this verify with the key (current keys: the lesser of the published valid_until_ts and 7 days after the check; old keys: expired_ts)
    expired_ts     bigint,           -- ms: when the server stopped using it (old_verify_keys); NULL while current
    fetched_ts     bigint NOT NULL,  -- ms: when this row was last written
    fetched_from   text   NOT NULL,  -- who answered: the server itself or the notary that vouched
    PRIMARY KEY (server_name, key_id)
);

-- The newest checked /_matrix/key/v2/server response of each server, handed on (with our own
-- signature added) when we answer as a notary, also while that server is down.
CREATE TABLE server_key_responses (
    server_name    text   PRIMARY KEY,  -- the server the response describes
    valid_until_ts bigint NOT NULL,     -- ms: the response's own valid_until_ts, uncapped
    fetched_ts     bigint NOT NULL,     -- ms: when we checked and stored it
    fetched_from   text   NOT NULL,     -- who answered: the server itself or a notary
    response       text   NOT NULL      -- its canonical JSON, keeping only the server's own signatures
);

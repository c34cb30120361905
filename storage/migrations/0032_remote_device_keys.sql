-- Other servers' users' keys as their server last answered `user/keys/query` about them, so
-- that /keys/query still answers with a user's devices while their server is down
-- (server-server-api.md "Device Management": a server keeps the device lists of the remote
-- users it shares rooms with). Kept only for users sharing a room with a local user.

CREATE TABLE remote_device_keys (
    user_id    text PRIMARY KEY,  -- a user of another server
    keys       text NOT NULL,     -- JSON {"device_keys": {device_id: keys}, "master_key"?, "self_signing_key"?}: their server's whole answer about them
    fetched_ts bigint NOT NULL    -- ms: when their server gave that answer
);

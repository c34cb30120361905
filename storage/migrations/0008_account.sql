-- Account management: refresh tokens, expiring access tokens and User-Interactive
-- Authentication sessions (spec "Refreshing access tokens", "User-Interactive Authentication").

CREATE TABLE refresh_tokens (
    token_hash    bytea PRIMARY KEY,          -- SHA-256 of the refresh token; the token itself is never stored
    user_id       text NOT NULL,              -- the user the token refreshes sessions of
    device_id     text NOT NULL,              -- the device the token (and every token it begets) belongs to
    previous_hash bytea,                      -- the refresh token exchanged for this one; revoked once this pair is used
    created_ts    bigint NOT NULL,            -- issue time, ms since the epoch
    FOREIGN KEY (user_id, device_id) REFERENCES devices ON DELETE CASCADE
);
CREATE INDEX refresh_tokens_device ON refresh_tokens (user_id, device_id);
CREATE INDEX refresh_tokens_previous ON refresh_tokens (previous_hash);

ALTER TABLE access_tokens ADD COLUMN expires_ts bigint;
COMMENT ON COLUMN access_tokens.expires_ts IS
    'when the token stops being honoured (ms since the epoch); NULL: never';
ALTER TABLE access_tokens ADD COLUMN refresh_token_hash bytea
    REFERENCES refresh_tokens ON DELETE CASCADE;
COMMENT ON COLUMN access_tokens.refresh_token_hash IS
    'the refresh token issued together with this access token; revoking it revokes this token';
CREATE INDEX access_tokens_refresh ON access_tokens (refresh_token_hash);

CREATE TABLE uia_sessions (
    session_id   text PRIMARY KEY,            -- the opaque `session` handed to the client
    user_id      text,                        -- whom the session authenticates; NULL until a stage names them
    request_hash bytea NOT NULL,              -- SHA-256 of session ID, method, path and body (without `auth`): the one request it authorises
    completed    text[] NOT NULL DEFAULT '{}', -- the stages completed so far
    expires_ts   bigint NOT NULL              -- after this (ms since the epoch) the session is unknown
);
CREATE INDEX uia_sessions_expiry ON uia_sessions (expires_ts);

-- User-Interactive Authentication sessions bind to the user and the endpoint (method and path)
-- that opened them, as other servers read "the same request": clients add or drop body fields
-- between stages. Once complete, a session answers again only the request that completed it.
-- Registration sessions remember the first request's parameters, so that the completing
-- request may carry only `auth`, and the user they registered, so that a retry returns them.

DELETE FROM uia_sessions;  -- sessions in flight were bound the old way; their clients start again

ALTER TABLE uia_sessions RENAME COLUMN request_hash TO completed_hash;
ALTER TABLE uia_sessions ALTER COLUMN completed_hash DROP NOT NULL;
COMMENT ON COLUMN uia_sessions.completed_hash IS
    'SHA-256 of session ID and body (without auth) of the request that completed the flow: the one request the session answers again; NULL until then';

ALTER TABLE uia_sessions ADD COLUMN method text NOT NULL;
COMMENT ON COLUMN uia_sessions.method IS 'the HTTP method of the request that opened the session';
ALTER TABLE uia_sessions ADD COLUMN path text NOT NULL;
COMMENT ON COLUMN uia_sessions.path IS 'the path of the request that opened the session: the only endpoint it authorises';

ALTER TABLE uia_sessions ADD COLUMN params jsonb;
COMMENT ON COLUMN uia_sessions.params IS
    'registration: the parameters given so far (username, device_id, initial_device_display_name, inhibit_login, refresh_token), never the password';
ALTER TABLE uia_sessions ADD COLUMN password_hash text;
COMMENT ON COLUMN uia_sessions.password_hash IS
    'registration: the argon2id hash of the password an earlier request of the session gave';
ALTER TABLE uia_sessions ADD COLUMN registered_user_id text;
COMMENT ON COLUMN uia_sessions.registered_user_id IS
    'registration: the user this session registered; completing it again logs in as them';

-- Registration tokens (spec "Token-authenticated registration", the m.login.registration_token
-- stage), made by admins through /_synapse/admin/v1/registration_tokens. A token is valid while
-- pending + completed < uses_allowed and it has not expired.
CREATE TABLE registration_tokens (
    token        text PRIMARY KEY,          -- the opaque token, [A-Za-z0-9._~-]{1,64}
    uses_allowed integer CHECK (uses_allowed >= 0), -- registrations it may complete; NULL: unlimited
    pending      integer NOT NULL DEFAULT 0 CHECK (pending >= 0), -- sessions that passed the stage and have not registered yet
    completed    integer NOT NULL DEFAULT 0 CHECK (completed >= 0), -- registrations it completed
    expiry_time  bigint                     -- ms since the epoch after which it is invalid; NULL: never
);

-- A registration session that passed the token stage holds one pending use of its token until
-- it registers (the use becomes completed) or expires (the use is given back).
ALTER TABLE uia_sessions ADD COLUMN registration_token text;
COMMENT ON COLUMN uia_sessions.registration_token IS
    'registration: the token whose pending use this session holds; NULL once it registered, or when it passed no token stage';

-- Server notices (Synapse's send_server_notice admin API): the one notices room of each user,
-- created by the notices user on the first notice.
CREATE TABLE server_notices_rooms (
    user_id text PRIMARY KEY REFERENCES users, -- the local user the notices are for
    room_id text NOT NULL                      -- their notices room
);

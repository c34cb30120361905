-- Push rules, notifications and pushers (Client-Server API "Push Notifications").

CREATE TABLE push_rules (
    user_id    text NOT NULL,                -- the rule's owner
    kind       text NOT NULL,                -- override, content, room, sender or underride
    rule_id    text NOT NULL,                -- the client's ID, unique within (user, kind)
    priority   integer NOT NULL,             -- order within (user, kind): higher is more important
    conditions jsonb,                        -- override/underride conditions; NULL for other kinds
    pattern    text,                         -- the glob of a content rule; NULL for other kinds
    actions    jsonb NOT NULL,               -- the actions array as the client set it
    enabled    boolean NOT NULL DEFAULT true, -- disabled rules never match
    PRIMARY KEY (user_id, kind, rule_id)
);

CREATE TABLE push_rule_default_changes (
    user_id text NOT NULL,                   -- the user who changed a server-default rule
    kind    text NOT NULL,                   -- the default rule's kind
    rule_id text NOT NULL,                   -- the default rule's ID (starts with '.')
    enabled boolean,                         -- the user's enabled flag; NULL keeps the default
    actions jsonb,                           -- the user's actions; NULL keeps the default
    PRIMARY KEY (user_id, kind, rule_id)
);

CREATE TABLE push_notifications (
    user_id         text NOT NULL,           -- the notified local user
    room_id         text NOT NULL,           -- the room of the event
    event_id        text NOT NULL,           -- the event that notified
    stream_ordering bigint NOT NULL,         -- the event's stream position (orders and pages)
    actions         jsonb NOT NULL,          -- the actions of the rule that matched
    highlight       boolean NOT NULL,        -- the actions set the highlight tweak
    ts              bigint NOT NULL,         -- when the notification was made, ms since the epoch
    PRIMARY KEY (user_id, stream_ordering)
);
CREATE INDEX push_notifications_room ON push_notifications (user_id, room_id, stream_ordering);

CREATE TABLE pushers (
    user_id             text NOT NULL,       -- the pusher's owner
    app_id              text NOT NULL,       -- reverse-DNS application ID (at most 64 chars)
    pushkey             text NOT NULL,       -- the routing token (at most 512 bytes)
    kind                text NOT NULL,       -- 'http' or 'email'
    app_display_name    text NOT NULL,       -- names the application to the user
    device_display_name text NOT NULL,       -- names the device to the user
    profile_tag         text,                -- which device-specific rules the pusher executes
    lang                text NOT NULL,       -- preferred notification language, e.g. 'en-US'
    data                jsonb NOT NULL,      -- the pusher's data object (url, format, custom keys)
    device_id           text,                -- the device whose access token registered it
    created_ts          bigint NOT NULL,     -- when it was first registered, ms since the epoch
    PRIMARY KEY (user_id, app_id, pushkey)
);
CREATE INDEX pushers_app_pushkey ON pushers (app_id, pushkey);

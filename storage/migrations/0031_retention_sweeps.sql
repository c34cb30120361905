-- Local media that a censored (redacted or purged) event referred to: the media retention
-- sweep deletes each one that no event and no avatar refers to any more.

CREATE TABLE media_release_candidates (
    media_id text PRIMARY KEY,   -- a local media ID (local_media.media_id; it may be gone already)
    since_ts bigint NOT NULL     -- ms: when the last event referring to it was censored
);

-- What the admin media API needs of local media: when each was last downloaded (to delete
-- media nobody reads any more), quarantine (an admin hides it from everyone) and protection
-- (an admin exempts it from quarantine and from deletion by age or size).

ALTER TABLE local_media
    ADD COLUMN last_access_ts bigint,  -- last download or thumbnail (to the minute), ms; NULL: never
    ADD COLUMN quarantined_by text,    -- the admin who quarantined it; NULL: served normally
    ADD COLUMN safe_from_quarantine boolean NOT NULL DEFAULT false; -- protected by an admin

-- Listing (and deleting) one user's media, newest first.
CREATE INDEX local_media_user_idx ON local_media (user_id, created_ts);
-- Whether any media ID or thumbnail still uses a file, before a deletion removes it.
CREATE INDEX local_media_content_idx ON local_media (content_hash);
CREATE INDEX media_thumbnails_thumbnail_idx ON media_thumbnails (thumbnail_hash);

-- Other servers' media this server fetched for its users, cached on disk. The bytes share the
-- content store (and so deduplicate) with local media: one file per SHA-256 under
-- `media.store_path`. The cache is bounded by `media.remote_cache_max_bytes`, least recently
-- used first out.

CREATE TABLE remote_media (
    server_name    text NOT NULL,    -- the server in mxc://<server_name>/<media_id>
    media_id       text NOT NULL,    -- the media ID on that server
    content_hash   text NOT NULL,    -- hex SHA-256 of the bytes: the file in the content store
    content_type   text NOT NULL,    -- the Content-Type the server gave (checked, else octet-stream)
    upload_name    text,             -- the file name its Content-Disposition gave, if any
    size_bytes     bigint NOT NULL,  -- length of the content
    fetched_ts     bigint NOT NULL,  -- when it was fetched, ms since the epoch
    last_access_ts bigint NOT NULL,  -- last download or thumbnail (to the minute), ms
    PRIMARY KEY (server_name, media_id)
);

-- Eviction walks the cache from the most recently used.
CREATE INDEX remote_media_access_idx ON remote_media (last_access_ts);
-- Whether a file is still used, before a deletion removes it.
CREATE INDEX remote_media_content_idx ON remote_media (content_hash);

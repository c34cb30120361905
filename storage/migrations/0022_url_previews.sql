-- URL previews (client-server-api "Content repository", GET /media/preview_url), kept per URL
-- and fetch time so that every process and every restart shares them, and a request's `ts`
-- gets the preview as it was then. A row is fresh until `expires_ts`; it is deleted a while
-- after that (the URL preview service's cleanup), so the table holds what was fetched lately.

CREATE TABLE url_previews (
    url        text NOT NULL,    -- the URL fetched (fragment removed)
    fetched_ts bigint NOT NULL,  -- when it was fetched, ms since the epoch
    expires_ts bigint NOT NULL,  -- until when it is the URL's current preview
    og         jsonb NOT NULL,   -- the preview as answered (og:image an mxc:// URI)
    media_id   text              -- the re-hosted og:image (server-owned local_media), if any
);

-- "The newest preview of this URL fetched at or before ts".
CREATE INDEX url_previews_url_idx ON url_previews (url, fetched_ts DESC);
-- The cleanup of expired rows.
CREATE INDEX url_previews_expires_idx ON url_previews (expires_ts);

-- Media the server fetched itself (a preview's image) belongs to no user: NULL `user_id`. The
-- same image fetched again is found by its hash and reused rather than stored under a new ID.
ALTER TABLE local_media ALTER COLUMN user_id DROP NOT NULL;
CREATE INDEX local_media_server_owned_idx ON local_media (content_hash) WHERE user_id IS NULL;

-- The media repository: metadata of local uploads and of the thumbnails made from them.
-- The bytes live on disk under `media.store_path`, one file per SHA-256 of the content, so two
-- uploads of the same bytes share a file; these tables map media IDs and thumbnail requests to
-- those hashes.

CREATE TABLE local_media (
    media_id          text PRIMARY KEY,  -- the random ID in mxc://<server_name>/<media_id>
    user_id           text NOT NULL,     -- who uploaded it (or created the ID with /create)
    created_ts        bigint NOT NULL,   -- when the ID was made, ms since the epoch
    unused_expires_ts bigint,            -- /create only: the upload must start before this
    content_hash      text,              -- hex SHA-256 of the bytes; NULL until uploaded
    content_type      text,              -- the Content-Type the uploader gave
    upload_name       text,              -- the `filename` the uploader gave, if any
    size_bytes        bigint,            -- length of the content; NULL until uploaded
    uploaded_ts       bigint             -- when the content arrived; NULL until uploaded
);

-- Counting a user's pending /create IDs (the spec asks servers to bound them).
CREATE INDEX local_media_pending_idx ON local_media (user_id) WHERE content_hash IS NULL;

CREATE TABLE media_thumbnails (
    source_hash    text NOT NULL,     -- content hash of the image thumbnailed
    width          integer NOT NULL,  -- the width the thumbnail was made for
    height         integer NOT NULL,  -- the height the thumbnail was made for
    method         text NOT NULL,     -- crop or scale
    thumbnail_hash text NOT NULL,     -- content hash of the thumbnail's bytes (may be the source)
    content_type   text NOT NULL,     -- image/png, image/jpeg, image/gif or image/webp
    PRIMARY KEY (source_hash, width, height, method)
);

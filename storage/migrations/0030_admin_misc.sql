-- What the admin API shows of devices and federation destinations beyond what serving needs:
-- the user agent a device was last seen with (GET /_synapse/admin/v2/users/{userId}/devices,
-- whois), and when a destination's current run of failures began and when it last failed
-- (GET /_synapse/admin/v1/federation/destinations).

ALTER TABLE devices ADD COLUMN last_seen_user_agent text; -- User-Agent header of the request that last moved last_seen_ts (NULL: none seen)

ALTER TABLE federation_destinations
    ADD COLUMN failure_ts bigint,                -- ms: when its current run of failures began; NULL when healthy
    ADD COLUMN last_failure_ts bigint,           -- ms: when its last transaction failed; NULL when healthy
    ADD COLUMN last_sent_stream_ordering bigint; -- events.stream_ordering of the latest PDU it accepted; NULL if none

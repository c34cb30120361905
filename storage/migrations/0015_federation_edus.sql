-- Where the m.device_list_update EDUs of each other server's user have got to: an update
-- whose prev_id names a later stream_id than this one means one was lost, and the user's
-- device list is fetched again (server-server-api.md "Device Management").

CREATE TABLE remote_device_list_streams (
    user_id   text PRIMARY KEY,  -- a user of another server whose device list we follow
    stream_id bigint NOT NULL    -- the stream_id of their last update applied, or of the last full fetch
);

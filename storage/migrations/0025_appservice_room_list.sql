-- The room directories of application services' networks (client-server-api "Application
-- service room directory": PUT /directory/list/appservice/{networkId}/{roomId}). A bridge lists
-- its portal rooms per remote network; they appear in /publicRooms for that network's
-- `third_party_instance_id` (`<appservice id>|<network id>`, as Synapse forms it) and with
-- `include_all_networks`, apart from the server's own directory (rooms.is_public).

CREATE TABLE appservice_room_list (
    appservice_id text NOT NULL,  -- the registration `id` of the service that listed the room
    network_id    text NOT NULL,  -- the network it is listed under (a protocol instance's network_id)
    room_id       text NOT NULL REFERENCES rooms ON DELETE CASCADE, -- the listed room
    PRIMARY KEY (appservice_id, network_id, room_id)
);

-- "Is this room listed by any service": the include_all_networks listing.
CREATE INDEX appservice_room_list_room_idx ON appservice_room_list (room_id);

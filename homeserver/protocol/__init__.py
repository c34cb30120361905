"""Moot's pure Matrix protocol core (the gomatrixserverlib of this server).

Everything under ``homeserver.protocol`` is sans-IO: plain dicts and frozen values go in,
decisions and new dicts come out. No clock, no randomness source of our own, no sockets, no
database. Time and signing keys are passed in by the caller. The modules map onto the spec:

- ``identifiers``     appendices "Identifier Grammar"
- ``canonical_json``  appendices "Canonical JSON"
- ``room_versions``   rooms/ (feature flags for room versions 1 to 12)
- ``hashing``         server-server "Calculating the content/reference hash", event and room IDs
- ``event_refs``      event ID forms per version, prev_events/auth_events entries (v1-v2 pairs)
- ``signing``         appendices "Signing JSON", server-server "Signing Events"
- ``redaction``       rooms/ "Redactions" (v1, v6, v8, v9 and v11 rules)
- ``power_levels``    m.room.power_levels semantics and createRoom defaults
- ``event_format``    server-server "Checks performed on receipt of a PDU" step 1, size limits
- ``auth_events``     server-server "Auth events selection", auth rule 2
- ``auth_rules``      rooms/ "Authorisation rules" (with ``power_levels_rules``,
                      ``third_party_invite``)
- ``events``          building PDUs and the Client-Server "ClientEvent" shape
- ``state_res``       rooms/ "State resolution" v2 and v2.1 (and the dispatch to v1)
- ``state_res_v1``    rooms/v1.md "State resolution"
"""

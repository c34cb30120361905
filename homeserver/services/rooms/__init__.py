"""The room cluster: the one path by which any event enters a room's DAG, and the memory of
rooms the rest of the server reads through.

- `view`: `RoomView`, what readers ask of rooms (PDUs, members, memberships, versions);
- `cache`: `RoomCache`, the caches behind that view;
- `writes`: one room write (per-room lock, stream slot, transaction), staging an accepted
  event's rows, the observers told of it, and what follows the commit;
- `local`: events this server builds (send batching, building, createRoom's first event);
- `remote`: events of other servers (receive, receive_batch, advancing the room's state);
- `outliers`: events stored for their part in auth chains and state, outside the timeline;
- `checks`: what both paths check of an event: the state keys read, the auth rules against a
  given state, the member limit;
- `policy`, `state`, `recent`, `remote_memberships`: server policy on events, state resolution
  where the DAG forks, the newest events in memory, memberships of rooms on other servers;
- `cluster`: the parts built together (one cache, one writer) for app.py to hand out.

Other modules depend on `RoomView` to read; only those that create events hold `LocalEvents`
(or, in federation, `RemoteEvents` and `Outliers`). Pure rules (state keys, the member limit)
live in `homeserver/protocol`.
"""

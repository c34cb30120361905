-- Extended profiles (spec v1.16) and the member events a profile change still owes its rooms.

-- Every profile field besides displayname and avatar_url (which keep their own columns, as
-- member events and federation read them): `m.tz` and custom namespaced keys.
ALTER TABLE profiles ADD COLUMN fields jsonb NOT NULL DEFAULT '{}'; -- field name -> any JSON value

-- Users whose displayname or avatar_url changed and whose m.room.member events in their
-- joined rooms may not say so yet. A row stays until every room is brought up to date, so a
-- restart resumes the work; a change during the work bumps the generation, and the row stays
-- for another pass.
CREATE TABLE profile_member_updates (
    user_id    text PRIMARY KEY REFERENCES users ON DELETE CASCADE, -- whose member events are behind
    generation bigint NOT NULL DEFAULT 0,  -- bumped by each change; the pass that saw it deletes the row
    queued_ts  bigint NOT NULL             -- the latest change, ms since the epoch
);

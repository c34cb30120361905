-- Notifications counted per thread (client-server-api "Threading", receipts.md "Threaded read
-- receipts"): a receipt with a thread ID reads only that thread, `main` only the main timeline,
-- an unthreaded receipt everything; /sync gives `unread_thread_notifications` per thread root.

ALTER TABLE push_actions
    ADD COLUMN thread_id text NOT NULL DEFAULT 'main';  -- the thread root the event is in, or 'main'

-- The thread replies notified before this migration (their edits and reactions stay 'main').
UPDATE push_actions p SET thread_id = moot_event_content(e.json) -> 'm.relates_to' ->> 'event_id'
FROM events e
WHERE e.event_id = p.event_id
  AND moot_event_content(e.json) -> 'm.relates_to' ->> 'rel_type' = 'm.thread'
  AND moot_event_content(e.json) -> 'm.relates_to' ->> 'event_id' IS NOT NULL;

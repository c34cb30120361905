-- Serves storage/rooms.py::get_txn_ids_for_events, run for every event a sync or /messages
-- returns to its sender: "which of these events did this device send, and with what txn ID".
-- The primary key (user_id, device_id, txn_id, scope) narrows to the device but then scans all
-- of its transactions; this index goes straight to the event.
CREATE INDEX client_transactions_event_idx ON client_transactions (user_id, device_id, event_id);

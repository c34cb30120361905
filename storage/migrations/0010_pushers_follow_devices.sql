-- A pusher lives as long as the device that registered it: deleting the device (logout,
-- device deletion, password change with logout_devices, deactivation) removes its pushers,
-- so a recovered account stops sending notifications to a compromised device's gateway.
DELETE FROM pushers p
WHERE p.device_id IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM devices d WHERE d.user_id = p.user_id AND d.device_id = p.device_id);
ALTER TABLE pushers
    ADD CONSTRAINT pushers_device_fkey FOREIGN KEY (user_id, device_id)
    REFERENCES devices (user_id, device_id) ON DELETE CASCADE;

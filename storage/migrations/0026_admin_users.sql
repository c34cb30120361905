-- What Synapse's user admin API shows of an account and Moot had no column for: whether a
-- deactivation erased it (GDPR erasure: profile cleared) and its user type (`bot`, `support`
-- or none), which shared-secret registration and `PUT /_synapse/admin/v2/users/...` set.
ALTER TABLE users ADD COLUMN erased boolean NOT NULL DEFAULT false; -- deactivated with `erase: true`
ALTER TABLE users ADD COLUMN user_type text; -- 'bot' or 'support'; NULL: an ordinary user

"""The server's configuration: one YAML file read into frozen dataclasses.

Every key and its default lives here, once; `config.sample.yaml` documents the same keys and a
test keeps the two in agreement. Unknown keys are errors that name their dotted path, so a typo
never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from homeserver.logs import FORMATS as LOG_FORMATS
from homeserver.protocol.identifiers import is_valid_server_name

MAX_ROOM_MEMBERS = 256
WORKER_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# Keys an earlier config.sample.yaml had under another name: still an error (a config must say
# what the server does), but one that names the fix.
MOVED_KEYS = {"listeners.trusted_proxies": "http.trusted_proxies"}


class ConfigError(Exception):
    """The configuration file is unreadable or has a wrong key or value."""


@dataclass(frozen=True, slots=True)
class ServerConfig:
    server_name: str = "localhost:8448"
    signing_key_path: str = "signing.key"
    public_baseurl: str | None = None


@dataclass(frozen=True, slots=True)
class ListenerConfig:
    host: str = "127.0.0.1"
    port: int | None = None


@dataclass(frozen=True, slots=True)
class FederationListenerConfig:
    host: str = "127.0.0.1"
    port: int | None = 8448
    tls_certificate_path: str = "tls.crt"
    tls_private_key_path: str = "tls.key"


@dataclass(frozen=True, slots=True)
class ListenersConfig:
    client: ListenerConfig = field(default_factory=lambda: ListenerConfig(port=8008))
    federation: FederationListenerConfig = field(default_factory=FederationListenerConfig)
    metrics: ListenerConfig = field(default_factory=lambda: ListenerConfig(port=9108))


@dataclass(frozen=True, slots=True)
class HttpConfig:
    """What the listeners believe of the reverse proxies in front of them."""

    # Peers whose X-Forwarded-For and X-Forwarded-Proto are read (homeserver/api/
    # client_address.py). The default is the addresses nginx on the same host connects from.
    trusted_proxies: tuple[IPNetwork, ...] = (
        ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("::1/128"),
    )


@dataclass(frozen=True, slots=True)
class WellKnownConfig:
    """Discovery files served at /.well-known/matrix/{server,client} (api/well_known.py)."""

    # `host[:port]` other servers reach our federation API at (delegation); None: 404.
    server: str | None = None
    # The client discovery file as is; None: built from server.public_baseurl, else from
    # the scheme and Host the request came with.
    client: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class DatabaseConfig:
    url: str | None = None
    embedded_dir: str = "postgres"
    embedded_bindir: str | None = None
    pool_min_size: int = 2
    pool_max_size: int = 20


@dataclass(frozen=True, slots=True)
class RegistrationConfig:
    enabled: bool = False
    # Whether anyone may register a guest account (`kind=guest`, spec "Guest Access").
    allow_guests: bool = False
    # The secret of shared-secret registration (`/_synapse/admin/v1/register`, what
    # `register_new_matrix_user` uses); None turns that endpoint off.
    shared_secret: str | None = None
    # Whether registering through the client API needs a registration token (the
    # `m.login.registration_token` stage; operators make tokens with the admin API).
    require_token: bool = False


@dataclass(frozen=True, slots=True)
class AccountsConfig:
    # Lifetime of an access token issued with a refresh token (clients that ask for none get
    # access tokens that never expire).
    access_token_lifetime_ms: int = 3_600_000
    # Threads of the pool that runs argon2 (password checks and hashing), apart from the
    # default pool that DNS and media use; each run holds 64 MiB while it lasts.
    password_hash_threads: int = 2


@dataclass(frozen=True, slots=True)
class RoomsConfig:
    max_members: int = MAX_ROOM_MEMBERS
    default_room_version: str = "12"


ENCRYPTION_DEFAULTS = ("private", "all", "off")


@dataclass(frozen=True, slots=True)
class EncryptionConfig:
    default: str = "private"


@dataclass(frozen=True, slots=True)
class PresenceConfig:
    idle_timeout_ms: int = 300_000


@dataclass(frozen=True, slots=True)
class UrlPreviewsConfig:
    """`GET /media/preview_url`: the server fetches pages its users link to."""

    enabled: bool = False
    # Fetch pages on loopback, private and link-local addresses (tests; a closed network).
    allow_private_addresses: bool = False


@dataclass(frozen=True, slots=True)
class MediaRetentionConfig:
    # Local media not downloaded (or, never downloaded, uploaded) for this long is deleted by
    # the retention sweep; None keeps it forever. Avatars in use are kept.
    local_lifetime_ms: int | None = None


@dataclass(frozen=True, slots=True)
class MediaConfig:
    # Where uploads are kept, relative to the data directory.
    store_path: str = "media"
    max_upload_bytes: int = 50 * 1024 * 1024
    # Other servers' media kept on disk (each item at most max_upload_bytes); past it, the
    # least recently used items are evicted.
    remote_cache_max_bytes: int = 1024 * 1024 * 1024
    # Images with more pixels are not thumbnailed (decoding them costs ~4 bytes a pixel).
    max_image_pixels: int = 32_000_000
    # IDs a user may hold from POST /create without having uploaded to them yet.
    max_pending_uploads: int = 10
    url_previews: UrlPreviewsConfig = field(default_factory=UrlPreviewsConfig)
    retention: MediaRetentionConfig = field(default_factory=lambda: MediaRetentionConfig())


@dataclass(frozen=True, slots=True)
class VoipConfig:
    """TURN credentials for calls, in the TURN REST API form coturn's `use-auth-secret` checks."""

    turn_uris: tuple[str, ...] = ()
    turn_shared_secret: str | None = None
    turn_user_lifetime_ms: int = 3_600_000


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    max_request_body_bytes: int = 1_048_576
    sync_timeout_max_ms: int = 60_000
    # Sliding sync connections (conn_id) a device keeps; a new one past this drops its oldest.
    sliding_sync_connections_per_device: int = 10
    # A request's headers must arrive within this many seconds of its first byte (of the
    # connection, for its first request), the whole request within request_timeout_s.
    header_timeout_s: float = 30.0
    request_timeout_s: float = 60.0
    # A body still arriving at this rate or faster earns the time it needs beyond
    # request_timeout_s (a large upload over a slow link), as nginx's client_body_timeout
    # lets a body go on while bytes keep coming.
    min_body_bytes_per_s: int = 32_768
    # Connections each listener holds at most (see homeserver/listeners.py).
    max_connections: int = 1000


@dataclass(frozen=True, slots=True)
class CachesConfig:
    """Memory bounds of the in-memory event caches, in bytes of event JSON."""

    event_cache_max_bytes: int = 128 * 1024 * 1024
    recent_events_max_bytes: int = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class QuotasConfig:
    """What one user may store; set far above what real clients use, so that only abuse
    meets them. A write past a count is 403 M_FORBIDDEN, one too big 413 M_TOO_LARGE."""

    # Account data entries of one user, global and per-room together (tags included).
    max_account_data_entries: int = 10_000
    # Bytes of one account data entry's content, as JSON.
    max_account_data_bytes: int = 512 * 1024
    # Tags on one room of one user.
    max_tags_per_room: int = 100
    # Sync filters one user has uploaded, and the size of one filter as JSON.
    max_filters_per_user: int = 1_000
    max_filter_bytes: int = 64 * 1024
    # Room aliases one user has created (and not deleted).
    max_aliases_per_user: int = 100
    # One-time keys in one /keys/upload, and unclaimed ones stored for one device.
    max_one_time_keys_per_upload: int = 200
    max_one_time_keys_per_device: int = 1_000
    # Backed-up room keys of one user, every backup version together (heavy users hold a few
    # hundred thousand).
    max_backup_keys_per_user: int = 1_000_000
    # initial_state entries in one createRoom (each becomes an event through the engine).
    max_initial_state: int = 100


@dataclass(frozen=True, slots=True)
class RateConfig:
    per_second: float = 10.0
    burst: int = 50


@dataclass(frozen=True, slots=True)
class RateLimitsConfig:
    enabled: bool = True
    per_user: RateConfig = field(default_factory=lambda: RateConfig(per_second=10.0, burst=50))
    per_ip: RateConfig = field(default_factory=lambda: RateConfig(per_second=20.0, burst=100))
    login_failures: RateConfig = field(default_factory=lambda: RateConfig(per_second=0.1, burst=5))
    login_failures_per_ip: RateConfig = field(
        default_factory=lambda: RateConfig(per_second=0.5, burst=30)
    )
    # Password checks one client address may have running or waiting at once.
    password_checks_per_ip: int = 1
    registration: RateConfig = field(default_factory=lambda: RateConfig(per_second=0.2, burst=10))
    # Registration token validity checks per client address (guessing tokens).
    registration_token_validity: RateConfig = field(
        default_factory=lambda: RateConfig(per_second=0.1, burst=5)
    )
    user_writes: RateConfig = field(default_factory=lambda: RateConfig(per_second=10.0, burst=100))
    reports: RateConfig = field(default_factory=lambda: RateConfig(per_second=0.05, burst=10))


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    level: str = "INFO"
    # `text` (a line for people) or `json` (one object per line, for log collectors).
    format: str = "text"


@dataclass(frozen=True, slots=True)
class FederationConfig:
    """Outbound federation: who we may connect to and how long we wait."""

    # Check peers' TLS certificates against the system's trust store.
    verify_certificates: bool = True
    # Connect to loopback, private and link-local addresses (servers on one machine/network).
    allow_private_addresses: bool = False
    # Servers asked for a server's keys when it cannot be reached itself.
    trusted_notaries: tuple[str, ...] = ()
    connect_timeout_s: float = 10.0
    request_timeout_s: float = 60.0
    # The longest a server name's address lookup may take (it runs in a small pool of its own).
    dns_timeout_s: float = 10.0
    # Queued items for a destination that has accepted no transaction since the oldest of them
    # was queued this long ago are dropped, with the destination's whole queue.
    destination_expiry_ms: int = 3 * 24 * 3600 * 1000
    # Destinations with their own label on the per-destination metrics; the rest are "other".
    metrics_destinations: int = 50
    # Distinct other servers one client request may make us contact (to-device, keys, invites).
    max_servers_per_request: int = 300
    # Distinct other servers one user's requests may make us contact per period.
    max_servers_per_user: int = 1000
    servers_per_user_period_ms: int = 3600 * 1000
    # Key fetches for servers we hold no keys of, per minute (signed requests from unknown
    # origins each cost one); over it, such requests get 401 until the minute is over.
    unknown_server_key_fetches_per_minute: int = 60


@dataclass(frozen=True, slots=True)
class PushConfig:
    """Delivery of notifications to push gateways (the URLs clients give in /pushers/set)."""

    # Connect to gateways on loopback, private and link-local addresses (a gateway on this
    # machine or network, tests).
    allow_private_addresses: bool = False


@dataclass(frozen=True, slots=True)
class AppServicesConfig:
    """Application services (bridges, bots): services/appservices.py reads their files."""

    # Registration files (YAML, as Synapse and the bridges write them), relative to the
    # directory of this file.
    registration_files: tuple[str, ...] = ()


DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class RetentionConfig:
    """Message retention (MSC1763 `m.room.retention`) and the sweeps that forget what is due."""

    # Purge events past their room's max_lifetime (or the default below); expired events are
    # served to no one before the sweep purges them.
    enabled: bool = False
    # The max_lifetime of rooms that set none; None keeps their events forever.
    default_max_lifetime_ms: int | None = None
    # A room's lifetime is clamped into this range (as Synapse: clamped, not refused); lower
    # the minimum for disappearing posts shorter than a day.
    allowed_lifetime_min_ms: int = DAY_MS
    allowed_lifetime_max_ms: int | None = None
    # How often every sweep (room retention, redactions, media, client IPs) runs.
    purge_interval_ms: int = 3_600_000


@dataclass(frozen=True, slots=True)
class RedactionsConfig:
    # The longest a redacted event's original content may stay in storage. Moot erases it
    # when the redaction takes effect (row, search index); the sweep every
    # retention.purge_interval_ms erases what that missed (edits of a redacted message, rows
    # of older versions), so this is an upper bound. None: no bound is promised.
    retention_period_ms: int | None = 7 * DAY_MS


@dataclass(frozen=True, slots=True)
class PrivacyConfig:
    # How long a device's last client IP address and user agent are kept; 0 keeps none.
    client_ip_retention_ms: int = 28 * DAY_MS


@dataclass(frozen=True, slots=True)
class ServerNoticesConfig:
    """Server notices (admin `send_server_notice`): messages from the server to a user."""

    # Localpart of the user who sends notices and owns each user's notices room; None turns
    # server notices off.
    localpart: str | None = None


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """One worker process (`run --worker NAME`): it serves /sync on its own client listener,
    and (`push`) delivers the push gateway queue, which the main process then only fills."""

    client: ListenerConfig = field(default_factory=ListenerConfig)
    metrics: ListenerConfig = field(default_factory=ListenerConfig)
    push: bool = False


@dataclass(frozen=True, slots=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    listeners: ListenersConfig = field(default_factory=ListenersConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    well_known: WellKnownConfig = field(default_factory=WellKnownConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    registration: RegistrationConfig = field(default_factory=RegistrationConfig)
    accounts: AccountsConfig = field(default_factory=AccountsConfig)
    rooms: RoomsConfig = field(default_factory=RoomsConfig)
    encryption: EncryptionConfig = field(default_factory=EncryptionConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    caches: CachesConfig = field(default_factory=CachesConfig)
    rate_limits: RateLimitsConfig = field(default_factory=RateLimitsConfig)
    quotas: QuotasConfig = field(default_factory=QuotasConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    media: MediaConfig = field(default_factory=MediaConfig)
    voip: VoipConfig = field(default_factory=VoipConfig)
    presence: PresenceConfig = field(default_factory=PresenceConfig)
    workers: dict[str, WorkerConfig] = field(default_factory=dict)
    federation: FederationConfig = field(default_factory=FederationConfig)
    push: PushConfig = field(default_factory=PushConfig)
    appservices: AppServicesConfig = field(default_factory=AppServicesConfig)
    server_notices: ServerNoticesConfig = field(default_factory=ServerNoticesConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    redactions: RedactionsConfig = field(default_factory=RedactionsConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    # Where relative paths in the file are resolved: the directory holding the config file.
    data_dir: Path = field(default=Path("."), metadata={"internal": True})

    def path(self, relative: str) -> Path:
        """Resolve a path from the config against the data directory."""
        p = Path(relative)
        return p if p.is_absolute() else self.data_dir / p

    def worker(self, name: str) -> WorkerConfig:
        """The settings of worker `name`; a ConfigError if it cannot run as one."""
        worker = self.workers.get(name)
        if worker is None:
            known = ", ".join(sorted(self.workers)) or "none"
            raise ConfigError(f"workers: no worker named {name!r} (configured: {known})")
        if self.database.url is None:
            raise ConfigError(
                "database.url: workers share the main process's PostgreSQL, so it must be "
                "configured (the embedded one serves a single process)"
            )
        return worker

    @property
    def push_worker(self) -> str | None:
        """The worker that delivers pushes; None when the main process does."""
        return next((name for name, worker in self.workers.items() if worker.push), None)


def _build(cls: type[Any], raw: Any, where: str) -> Any:
    """Turn a mapping into the dataclass `cls`, refusing unknown keys and wrong types."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in known:
            moved = f" (moved to {MOVED_KEYS[path]})" if path in MOVED_KEYS else ""
            raise ConfigError(f"unknown configuration key: {path}{moved}")
        kwargs[key] = _convert(hints[key], value, path)
    return cls(**kwargs)


def _convert(hint: Any, value: Any, path: str) -> Any:
    if hint is Any:
        return value
    if hint == IPNetwork:
        return _network(value, path)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _build(hint, value, path)
    if typing.get_origin(hint) is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        item_type = typing.get_args(hint)[0]
        return tuple(_convert(item_type, v, f"{path}[{i}]") for i, v in enumerate(value))
    if typing.get_origin(hint) is dict:
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {type(value).__name__}")
        key_type, value_type = typing.get_args(hint)
        return {
            _convert(key_type, k, path): _convert(value_type, v, f"{path}.{k}")
            for k, v in value.items()
        }
    optional = isinstance(hint, types.UnionType) and type(None) in hint.__args__
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{path}: a value is required")
    if optional:
        return _convert(next(a for a in hint.__args__ if a is not type(None)), value, path)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float) and isinstance(value, bool):
        raise ConfigError(f"{path}: expected a number, got {value!r}")
    if not isinstance(value, hint):
        raise ConfigError(f"{path}: expected {hint.__name__}, got {value!r}")
    return value


def _network(value: Any, path: str) -> IPNetwork:
    """A CIDR (`10.0.0.0/8`) or a bare address (one host: /32 or /128), parsed once here."""
    if not isinstance(value, str):
        raise ConfigError(f"{path}: expected an address or CIDR string, got {value!r}")
    try:
        return ipaddress.ip_network(value.strip())
    except ValueError as e:
        raise ConfigError(f"{path}: {value!r} is not an address or CIDR ({e})") from None


def _is_json(value: Any) -> bool:
    """Whether YAML gave a value JSON can carry as is (not a date, a set, a non-string key)."""
    if value is None or isinstance(value, str | bool | int):
        return True
    if isinstance(value, float):
        return value == value and value not in (float("inf"), float("-inf"))
    if isinstance(value, list):
        return all(_is_json(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_json(v) for k, v in value.items())
    return False


def _is_http_url(value: str) -> bool:
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _validate_well_known(config: WellKnownConfig) -> None:
    if config.server is not None and not is_valid_server_name(config.server):
        raise ConfigError(
            f"well_known.server: {config.server!r} is not a server name with optional port "
            "(matrix.example.org:443)"
        )
    client = config.client
    if client is None:
        return
    if not _is_json(client):
        raise ConfigError("well_known.client: must hold only JSON values (strings, numbers, "
                          "booleans, null, lists and mappings with string keys)")
    # The spec's discovery information requires `m.homeserver`, and a `base_url` in it and in
    # `m.identity_server`: a client given a file without them stops at "FAIL_PROMPT".
    if "m.homeserver" not in client:
        raise ConfigError("well_known.client: m.homeserver is required "
                          '({"m.homeserver": {"base_url": "https://matrix.example.org"}})')
    for key in ("m.homeserver", "m.identity_server"):
        if key not in client:
            continue
        section = client[key]
        if not isinstance(section, dict):
            raise ConfigError(f"well_known.client.{key}: expected a mapping")
        base_url = section.get("base_url")
        if not (isinstance(base_url, str) and _is_http_url(base_url)):
            raise ConfigError(f"well_known.client.{key}.base_url: {base_url!r} is not an "
                              "http(s) URL")


def validate(config: Config) -> Config:
    """Check the cross-field rules the types alone cannot say."""
    if not 2 <= config.rooms.max_members <= MAX_ROOM_MEMBERS:
        raise ConfigError(
            f"rooms.max_members: must be between 2 and {MAX_ROOM_MEMBERS}, "
            f"got {config.rooms.max_members}"
        )
    if config.accounts.access_token_lifetime_ms < 1:
        raise ConfigError(
            "accounts.access_token_lifetime_ms: must be at least 1, "
            f"got {config.accounts.access_token_lifetime_ms}"
        )
    if config.accounts.password_hash_threads < 1:
        raise ConfigError(
            "accounts.password_hash_threads: must be at least 1, "
            f"got {config.accounts.password_hash_threads}"
        )
    if config.rate_limits.password_checks_per_ip < 1:
        raise ConfigError(
            "rate_limits.password_checks_per_ip: must be at least 1, "
            f"got {config.rate_limits.password_checks_per_ip}"
        )
    if config.encryption.default not in ENCRYPTION_DEFAULTS:
        raise ConfigError(
            f"encryption.default: must be one of {', '.join(ENCRYPTION_DEFAULTS)}, "
            f"got {config.encryption.default!r}"
        )
    if bool(config.voip.turn_uris) != (config.voip.turn_shared_secret is not None):
        raise ConfigError(
            "voip: turn_uris and turn_shared_secret go together (credentials are made from "
            "the secret for the servers the URIs name)"
        )
    if config.voip.turn_user_lifetime_ms < 1000:
        raise ConfigError("voip.turn_user_lifetime_ms: must be at least 1000 (a ttl of 1 s)")
    if config.presence.idle_timeout_ms < 1:
        raise ConfigError("presence.idle_timeout_ms: must be at least 1")
    for key in ("max_upload_bytes", "remote_cache_max_bytes", "max_image_pixels",
                "max_pending_uploads"):
        if getattr(config.media, key) < 1:
            raise ConfigError(f"media.{key}: must be at least 1")
    for name, worker in config.workers.items():
        if not WORKER_NAME.fullmatch(name):
            raise ConfigError(
                f"workers.{name}: a worker name is letters, digits, '-' and '_' (at most 64)"
            )
        if worker.client.port is None and not worker.push:
            raise ConfigError(
                f"workers.{name}.client.port: a worker needs a client port (unless it is the "
                "push worker)"
            )
    pushing = [name for name, worker in config.workers.items() if worker.push]
    if pushing and config.database.url is None:
        raise ConfigError(
            f"workers.{pushing[0]}.push: a push worker shares the main process's PostgreSQL, "
            "so database.url must be configured"
        )
    if len(pushing) > 1:
        raise ConfigError(
            f"workers.{pushing[1]}.push: only one worker delivers pushes ({pushing[0]} does)"
        )
    for key in ("header_timeout_s", "request_timeout_s", "min_body_bytes_per_s",
                "max_connections", "sliding_sync_connections_per_device"):
        if getattr(config.limits, key) <= 0:
            raise ConfigError(f"limits.{key}: must be more than 0")
    if config.limits.header_timeout_s > config.limits.request_timeout_s:
        raise ConfigError("limits.header_timeout_s: must not be more than request_timeout_s")
    for key in (
        "connect_timeout_s", "request_timeout_s", "dns_timeout_s", "destination_expiry_ms",
        "max_servers_per_request", "max_servers_per_user", "servers_per_user_period_ms",
        "unknown_server_key_fetches_per_minute",
    ):
        if getattr(config.federation, key) <= 0:
            raise ConfigError(f"federation.{key}: must be more than 0")
    if config.federation.metrics_destinations < 0:
        raise ConfigError("federation.metrics_destinations: must be at least 0")
    for i, notary in enumerate(config.federation.trusted_notaries):
        if not is_valid_server_name(notary):
            raise ConfigError(f"federation.trusted_notaries[{i}]: {notary!r} is not a server name")
    _validate_well_known(config.well_known)
    if config.logging.level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise ConfigError(f"logging.level: unknown level {config.logging.level!r}")
    if config.logging.format not in LOG_FORMATS:
        raise ConfigError(f"logging.format: {config.logging.format!r} is not one of {LOG_FORMATS}")
    return config


def parse_config(text: str, data_dir: Path) -> Config:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"configuration is not valid YAML: {e}") from e
    config = _build(Config, raw, "")
    return validate(dataclasses.replace(config, data_dir=data_dir))


def load_config(path: str | Path) -> Config:
    p = Path(path).resolve()
    try:
        text = p.read_text()
    except OSError as e:
        raise ConfigError(f"cannot read configuration file {p}: {e}") from e
    return parse_config(text, p.parent)

"""fsctl's own settings: defaults, then the TOML file, then FSCTL_* environment variables."""

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path

from .errors import ConfigError

DEFAULT_CONFIG_PATH = "/etc/fsctl/fsctl.toml"


@dataclass(frozen=True)
class Settings:
    """Every setting fsctl reads; the TOML keys and FSCTL_<NAME> variables use these names."""

    database: str = "sqlite:////var/lib/fsctl/fsctl.db"
    # Where `fsctl apply` writes the rendered XML (FreeSWITCH's conf dir includes it).
    conf_dir: str = "/etc/freeswitch/fsctl"
    # An operator's template overrides, searched before the packaged templates.
    templates_dir: str = ""
    esl_host: str = "127.0.0.1"
    esl_port: int = 8021
    esl_password: str = "ClueCon"
    esl_timeout: float = 5.0
    # Seconds a scenario call waits, parked, for the call-logic service before the rendered
    # dialplan sends it to the tenant's fallback (sched_transfer; see fsctl/render.py).
    handoff_watchdog: int = 6
    # mod_xml_cdr's folder (fsctl freeswitch setup writes it into xml_cdr.conf; fsctl check compares).
    xml_cdr_dir: str = "/var/log/freeswitch/xml_cdr"
    # The busiest second you expect: new calls per second over all tenants (fsctl check compares
    # it with FreeSWITCH's sessions-per-second).
    calls_per_second: int = 10
    # R-ADM instant activation: every provisioning command that changes a tenant applies it to
    # FreeSWITCH right away (as `fsctl apply` would). `fsctl --apply/--no-apply` overrides it.
    auto_apply: bool = False
    recordings_dir: str = "/var/lib/freeswitch/recordings"
    media_dir: str = "/var/lib/freeswitch/storage/fsctl-media"
    recording_retention_days: int = 180
    recording_quota_mb: int = 30
    sftp_host: str = "127.0.0.1"
    sftp_port: int = 22
    sftp_user: str = "fsctl"
    sftp_key: str = ""
    sftp_known_hosts: str = "~/.ssh/known_hosts"
    sftp_remote_dir: str = "/var/lib/freeswitch/recordings"
    publish_dir: str = "/srv/sftp"
    publish_hour: int = 6
    publish_keep_days: int = 3
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_from: str = "pbx@localhost"
    callout_gateway: str = "default"
    # Missed-call notifications and CRM events (fsctl.services.notify): delivery attempts and backoff.
    notify_max_attempts: int = 8
    notify_backoff: float = 30.0  # seconds before the 2nd attempt, doubled each time (cap 1 h)
    notify_timeout: float = 10.0  # seconds per SMTP or HTTP attempt
    # Base URL the recordings are served from (CRM "recording link"); empty: the relative path.
    recordings_url: str = ""
    # Webhooks and CRM hooks go to public addresses only; these networks (comma-separated CIDRs,
    # e.g. "127.0.0.0/8, 10.1.2.0/24") are allowed too: loopback, private and link-local
    # targets are refused otherwise (the metadata service at 169.254.169.254, an admin port on ::1).
    webhook_allow_networks: str = ""
    # More than one FreeSWITCH (fsctl node ...): Kamailio in front of the nodes (fsctl.kamailio).
    # Where fsctl writes Kamailio's routing files ("": fsctl does not manage Kamailio).
    kamailio_dir: str = ""
    # Kamailio's SIP socket(s) for phones and carriers, space-separated (kamailio.cfg `listen`).
    kamailio_listen: str = "udp:127.0.0.1:5060"
    # Kamailio's control socket (module ctl) that `kamcmd -s` reloads the routing through.
    kamailio_ctl: str = "unix:/run/kamailio/kamailio_ctl"
    kamcmd: str = "kamcmd"
    # The longest registration Kamailio lets a phone keep (s): after a node fails, every phone of
    # its tenants has re-registered on the standby within this time.
    kamailio_expires: int = 120
    # Seconds between Kamailio's OPTIONS probes of each node; a node that does not answer one
    # is taken out until it answers again.
    kamailio_ping_interval: int = 5
    # The web workspace (fsctl-web): where it listens (behind the operator's TLS reverse proxy),
    # its public address (sign-in links in e-mails), the SIP server shown to phones, cookies
    # marked Secure (false only for plain-HTTP testing), and the API's rate per token.
    web_host: str = "127.0.0.1"
    web_port: int = 8090
    web_base_url: str = "http://127.0.0.1:8090"
    web_sip_server: str = "127.0.0.1:5060"
    web_secure_cookies: bool = True
    web_api_rate_per_minute: int = 120

    def __post_init__(self):
        allowed_networks(self.webhook_allow_networks)  # ConfigError naming the bad one
        for name, (low, high) in _RANGES.items():
            value = getattr(self, name)
            if not isinstance(value, bool) and isinstance(value, (int, float)) and not low <= value <= high:
                rule = f"must be at least {low}" if high == _MAX else f"must be between {low} and {high}"
                raise ConfigError(f'setting {name} "{value}": {rule}')


_MAX = 10**9
# Numeric settings and what they may be: a zero or negative quota would purge every user's
# recordings but the newest, a zero retention all of them.
_RANGES = {
    "esl_port": (1, 65535),
    "sftp_port": (1, 65535),
    "smtp_port": (1, 65535),
    "esl_timeout": (0.1, 3600),
    "handoff_watchdog": (1, 300),
    "recording_retention_days": (1, _MAX),
    "recording_quota_mb": (1, _MAX),
    "publish_hour": (0, 23),
    "publish_keep_days": (1, _MAX),
    "notify_max_attempts": (1, 1000),
    "notify_backoff": (0.001, 86400),
    "notify_timeout": (0.1, 3600),
    "web_port": (1, 65535),
    "web_api_rate_per_minute": (1, 10**6),
    "kamailio_expires": (1, 86400),
    "kamailio_ping_interval": (1, 3600),
}


def allowed_networks(text) -> tuple:
    """The networks of the webhook_allow_networks setting ("127.0.0.0/8, ::1/128"), parsed."""
    import ipaddress

    networks = []
    for item in str(text or "").replace(";", ",").split(","):
        item = item.strip()
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigError(
                f'setting webhook_allow_networks "{item}": must be networks like 127.0.0.0/8, comma-separated'
            ) from None
    return tuple(networks)


def load_settings(path=None, environ=None):
    """Read settings from the TOML file (if any) and FSCTL_* variables, later wins.

    A key fsctl does not know is an error naming it (a typo would otherwise fall back to the
    default silently: `databse = ...` would open the default database).
    """
    environ = os.environ if environ is None else environ
    values = {}
    explicit = path or environ.get("FSCTL_CONFIG")
    candidate = Path(explicit or DEFAULT_CONFIG_PATH)
    if candidate.exists():
        import tomllib  # (only when there is a file to read)

        try:
            with candidate.open("rb") as fh:
                data = tomllib.load(fh)
        except (tomllib.TOMLDecodeError, OSError) as exc:
            raise ConfigError(f'config "{candidate}": {exc}') from None
        section = data.get("fsctl", data)
        for key in data:
            if key != "fsctl" and section is not data:
                raise ConfigError(f'config "{candidate}": unknown section or key "{key}" (settings go under [fsctl])')
        if not isinstance(section, dict):
            raise ConfigError(f'config "{candidate}": [fsctl] must be a table of settings')
        known = {f.name for f in fields(Settings)}
        for key in section:
            if key not in known:
                import difflib

                close = difflib.get_close_matches(key, sorted(known), n=1)
                hint = f' (did you mean "{close[0]}"?)' if close else ""
                raise ConfigError(f'config "{candidate}": unknown setting "{key}"{hint}')
        values.update(section)
    elif explicit:
        raise ConfigError(f'config "{candidate}": file does not exist')
    _check_environment(environ)
    defaults = Settings()
    for f in fields(Settings):
        env = environ.get("FSCTL_" + f.name.upper())
        if env is not None:
            values[f.name] = env
    clean = {key: _coerce(key, value, type(getattr(defaults, key))) for key, value in values.items()}
    return replace(defaults, **clean)


# FSCTL_* variables that are not settings: the settings file's path, and a prefix the test suite
# keeps for itself (FSCTL_TEST_FREESWITCH_RUNTIME, ...).
_OTHER_VARIABLES = ("FSCTL_CONFIG",)
_TEST_PREFIX = "FSCTL_TEST_"


def _check_environment(environ) -> None:
    """Refuse an FSCTL_* variable that names no setting: a typo (FSCTL_DATABSE) would otherwise not
    apply, silently. The error names the variable, not its value (it may be a password)."""
    known = {"FSCTL_" + f.name.upper() for f in fields(Settings)} | set(_OTHER_VARIABLES)
    for name in sorted(environ):
        if name.startswith("FSCTL_") and name not in known and not name.startswith(_TEST_PREFIX):
            import difflib

            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(
                f"environment variable {name}: not an fsctl setting{hint}; settings are "
                "FSCTL_<setting name>, as in fsctl.toml"
            )


def _coerce(key, value, kind):
    """Convert a text setting to the type of its default."""
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off", ""):
            return False
        raise ConfigError(f'setting {key} "{value}": must be true or false')
    if isinstance(value, kind):
        return value
    try:
        if kind is int:
            return int(value)
        if kind is float:
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        noun = {int: "a whole number", float: "a number"}.get(kind, "text")
        raise ConfigError(f'setting {key} "{value}": must be {noun}') from None

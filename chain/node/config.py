"""The configuration file of a validator or observer node (TOML).

::

    name = "v0"                    # validator name in the trust file (or an observer name)
    role = "validator"             # "validator" (votes; needs key_file) or "observer"
    key_file = "keys/v0.key"       # private key written by `notary keygen`
    trust_file = "trust.json"      # the genesis
    data_dir = "data/v0"           # Merkle log and consensus store

    [listen]                       # peer endpoint and client API share one port
    host = "127.0.0.1"
    port = 7100

    [tls]                          # optional, on every link
    cert = "tls/v0.crt"            # server certificate (PEM); with key
    key = "tls/v0.key"
    ca = "tls/ca.crt"              # CA bundle that peers' certificates must chain to

    [peers]                        # name -> base URL; default: the trust file addresses
    v1 = "https://127.0.0.1:7101"
    regulator = "https://127.0.0.1:7200"   # observers listed here receive the chain

    [limits]
    max_batch_entries = 10000      # entries per POST /v1/entries
    max_request_bytes = 16777216   # body size of any request
    mempool_entries = 200000
    mempool_bytes = 67108864
    peer_queue = 4096              # outbound messages queued per peer before dropping
    max_wait_s = 60                # longest long-poll

    [consensus]
    batch_entries = 5000           # entries per block
    batch_delay_ms = 50            # how long a leader waits to fill a block
    view_timeout_ms = 1000         # base view timeout (grows while views fail)
    max_clock_skew_ms = 5000
    heartbeat_ms = 10000           # an idle chain proposes one empty block per heartbeat

Relative paths are relative to the directory of the config file. Every invalid setting
raises :class:`ConfigError` naming the file and the setting.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chain.errors import ConfigError as ConfigError

ROLES = ("validator", "observer")


@dataclass(frozen=True)
class TlsConfig:
    """TLS files (PEM). ``cert``/``key`` serve; ``ca`` verifies peers."""

    cert: Path | None = None
    key: Path | None = None
    ca: Path | None = None


@dataclass(frozen=True)
class Limits:
    """Resource limits of a node."""

    max_batch_entries: int = 10_000
    max_request_bytes: int = 16 << 20
    mempool_entries: int = 200_000
    mempool_bytes: int = 64 << 20
    peer_queue: int = 4096
    max_wait_s: float = 60.0


@dataclass(frozen=True)
class ConsensusTuning:
    """Consensus tunables that may differ per deployment."""

    batch_entries: int = 5_000
    batch_delay_ms: int = 50
    view_timeout_ms: int = 1_000
    max_clock_skew_ms: int = 5_000
    heartbeat_ms: int = 10_000
    # Obsolete (accepted so older config files still load; ignored): submitted entries
    # now go to every validator before the submission is acknowledged.
    forward_to_leaders: int = 1


@dataclass(frozen=True)
class NodeConfig:
    """A parsed, checked node configuration (paths absolute)."""

    name: str
    role: str
    trust_file: Path
    data_dir: Path
    key_file: Path | None = None
    host: str = "127.0.0.1"
    port: int = 7100
    tls: TlsConfig = field(default_factory=TlsConfig)
    peers: dict[str, str] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    consensus: ConsensusTuning = field(default_factory=ConsensusTuning)

    @property
    def is_validator(self) -> bool:
        """Whether this node votes."""
        return self.role == "validator"


class _Reader:
    def __init__(self, where: str, base: Path) -> None:
        self.where = where
        self.base = base

    def fail(self, setting: str, message: str) -> ConfigError:
        return ConfigError(f"{self.where}: setting '{setting}': {message}")

    def section(self, data: dict[str, Any], key: str) -> dict[str, Any]:
        value = data.get(key, {})
        if not isinstance(value, dict):
            raise self.fail(key, "must be a table")
        return value

    def string(self, data: dict[str, Any], key: str, setting: str, default: str | None) -> str:
        value = data.get(key, default)
        if not isinstance(value, str) or not value:
            raise self.fail(setting, "must be a non-empty string")
        return value

    def path(self, data: dict[str, Any], key: str, setting: str) -> Path | None:
        value = data.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            raise self.fail(setting, "must be a path string")
        p = Path(value).expanduser()
        return p if p.is_absolute() else (self.base / p).resolve()

    def integer(
        self, data: dict[str, Any], key: str, setting: str, default: int, lo: int, hi: int
    ) -> int:
        value = data.get(key, default)
        if type(value) is not int or not lo <= value <= hi:
            raise self.fail(setting, f"must be an integer in {lo}..{hi}")
        return value

    def check_known(self, data: dict[str, Any], known: set[str], prefix: str = "") -> None:
        for key in data:
            if key not in known:
                raise self.fail(prefix + key, "unknown setting")


def parse_config(data: dict[str, Any], where: str, base: Path) -> NodeConfig:
    """Check a TOML document already parsed into ``data``; ``base`` resolves relative paths."""
    r = _Reader(where, base)
    r.check_known(
        data,
        {"name", "role", "key_file", "trust_file", "data_dir"}
        | {"listen", "tls", "peers", "limits", "consensus"},
    )
    name = r.string(data, "name", "name", None)
    role = r.string(data, "role", "role", "validator")
    if role not in ROLES:
        raise r.fail("role", f"must be one of {', '.join(ROLES)}")
    trust_file = r.path(data, "trust_file", "trust_file")
    if trust_file is None:
        raise r.fail("trust_file", "is required")
    data_dir = r.path(data, "data_dir", "data_dir")
    if data_dir is None:
        raise r.fail("data_dir", "is required")
    key_file = r.path(data, "key_file", "key_file")
    if role == "validator" and key_file is None:
        raise r.fail("key_file", "is required for a validator")

    listen = r.section(data, "listen")
    r.check_known(listen, {"host", "port"}, "listen.")
    host = r.string(listen, "host", "listen.host", "127.0.0.1")
    port = r.integer(listen, "port", "listen.port", 7100, 0, 65535)

    tls_data = r.section(data, "tls")
    r.check_known(tls_data, {"cert", "key", "ca"}, "tls.")
    tls = TlsConfig(
        cert=r.path(tls_data, "cert", "tls.cert"),
        key=r.path(tls_data, "key", "tls.key"),
        ca=r.path(tls_data, "ca", "tls.ca"),
    )
    if (tls.cert is None) != (tls.key is None):
        raise r.fail("tls.cert" if tls.cert is None else "tls.key", "cert and key go together")
    for setting, p in (("tls.cert", tls.cert), ("tls.key", tls.key), ("tls.ca", tls.ca)):
        if p is not None and not p.is_file():
            raise r.fail(setting, f"file {p} does not exist")

    peers_data = r.section(data, "peers")
    peers: dict[str, str] = {}
    for peer, url in peers_data.items():
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise r.fail(f"peers.{peer}", "must be an http:// or https:// URL")
        peers[str(peer)] = url.rstrip("/")

    lim = r.section(data, "limits")
    d = Limits()
    r.check_known(lim, set(Limits.__dataclass_fields__), "limits.")
    limits = Limits(
        max_batch_entries=r.integer(
            lim, "max_batch_entries", "limits.max_batch_entries", d.max_batch_entries, 1, 1 << 20
        ),
        max_request_bytes=r.integer(
            lim, "max_request_bytes", "limits.max_request_bytes", d.max_request_bytes, 1024, 1 << 30
        ),
        mempool_entries=r.integer(
            lim, "mempool_entries", "limits.mempool_entries", d.mempool_entries, 1, 1 << 26
        ),
        mempool_bytes=r.integer(
            lim, "mempool_bytes", "limits.mempool_bytes", d.mempool_bytes, 1024, 1 << 34
        ),
        peer_queue=r.integer(lim, "peer_queue", "limits.peer_queue", d.peer_queue, 1, 1 << 20),
        max_wait_s=float(
            r.integer(lim, "max_wait_s", "limits.max_wait_s", int(d.max_wait_s), 0, 3600)
        ),
    )

    cons = r.section(data, "consensus")
    c = ConsensusTuning()
    r.check_known(cons, set(ConsensusTuning.__dataclass_fields__), "consensus.")
    consensus = ConsensusTuning(
        batch_entries=r.integer(
            cons, "batch_entries", "consensus.batch_entries", c.batch_entries, 1, 1 << 20
        ),
        batch_delay_ms=r.integer(
            cons, "batch_delay_ms", "consensus.batch_delay_ms", c.batch_delay_ms, 0, 60_000
        ),
        view_timeout_ms=r.integer(
            cons, "view_timeout_ms", "consensus.view_timeout_ms", c.view_timeout_ms, 10, 600_000
        ),
        max_clock_skew_ms=r.integer(
            cons,
            "max_clock_skew_ms",
            "consensus.max_clock_skew_ms",
            c.max_clock_skew_ms,
            0,
            3_600_000,
        ),
        heartbeat_ms=r.integer(
            cons, "heartbeat_ms", "consensus.heartbeat_ms", c.heartbeat_ms, 100, 3_600_000
        ),
        forward_to_leaders=r.integer(
            cons,
            "forward_to_leaders",
            "consensus.forward_to_leaders",
            c.forward_to_leaders,
            0,
            1024,
        ),
    )
    return NodeConfig(
        name=name,
        role=role,
        trust_file=trust_file,
        data_dir=data_dir,
        key_file=key_file,
        host=host,
        port=port,
        tls=tls,
        peers=peers,
        limits=limits,
        consensus=consensus,
    )


def load_config(path: Path) -> NodeConfig:
    """Read and check the node config file at ``path``; raises :class:`ConfigError`."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config file: {e.strerror or e}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    return parse_config(data, str(path), path.parent.resolve())


def render_config(config: NodeConfig) -> str:
    """TOML text for ``config`` (used by ``notary node init`` and tests)."""

    def q(s: object) -> str:
        return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = [
        f"name = {q(config.name)}",
        f"role = {q(config.role)}",
        f"trust_file = {q(config.trust_file)}",
        f"data_dir = {q(config.data_dir)}",
    ]
    if config.key_file is not None:
        lines.append(f"key_file = {q(config.key_file)}")
    lines += ["", "[listen]", f"host = {q(config.host)}", f"port = {config.port}"]
    tls = [(k, v) for k, v in vars(config.tls).items() if v is not None]
    if tls:
        lines += ["", "[tls]"] + [f"{k} = {q(v)}" for k, v in tls]
    if config.peers:
        lines += ["", "[peers]"] + [f"{q(k)} = {q(v)}" for k, v in config.peers.items()]
    lines += ["", "[limits]"] + [f"{k} = {int(v)}" for k, v in vars(config.limits).items()]
    tuning = {k: v for k, v in vars(config.consensus).items() if k != "forward_to_leaders"}
    lines += ["", "[consensus]"] + [f"{k} = {v}" for k, v in tuning.items()]
    return "\n".join(lines) + "\n"

"""Configuration of the notary service: defaults, a TOML file, then environment variables.

With no file and no variables, the service runs its embedded default: the API on
127.0.0.1:8080, six folder storage nodes, SQLite and four validators in a child process, all
under ``./var``. Production sets a PostgreSQL URL, S3 nodes and the validators' addresses.

Precedence: built-in defaults < TOML file (``--config`` or ``NOTARY_CONFIG``) <
environment variables. Every environment variable is ``NOTARY_<SECTION>_<KEY>`` for a
setting ``[section] key`` (for example ``NOTARY_SERVER_PORT=9000``,
``NOTARY_DATABASE_URL=postgresql+asyncpg://...``). An invalid setting raises
:class:`ConfigError` whose message names the setting, so the service fails at start with
one clear line.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

MiB = 1024 * 1024
ENV_PREFIX = "NOTARY_"


class ConfigError(Exception):
    """An invalid configuration; the message names the setting."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8080
    tls_cert: Path | None = None
    tls_key: Path | None = None
    public_url: str | None = None

    @model_validator(mode="after")
    def _tls_pair(self) -> ServerSettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key must be set together")
        return self


class LocalNodeSettings(_Section):
    kind: Literal["local"] = "local"
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")]
    path: Path
    zone: str = "default"
    # Small blobs appended to pack files rather than one file each (docs/storage.md).
    pack: bool = True


class S3NodeSettings(_Section):
    kind: Literal["s3"]
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")]
    endpoint_url: str
    bucket: str
    access_key: str
    secret_key: Annotated[str, Field(repr=False)]
    region: str = "us-east-1"
    zone: str = "default"
    prefix: str = ""
    object_lock_days: Annotated[int, Field(ge=1)] | None = None
    verify_tls: bool | str = True


NodeSettings = Annotated[LocalNodeSettings | S3NodeSettings, Field(discriminator="kind")]


class StorageSettings(_Section):
    k: Annotated[int, Field(ge=1, le=15)] = 4
    m: Annotated[int, Field(ge=1, le=15)] = 2
    segment_size: Annotated[int, Field(ge=4096, le=256 * MiB)] = 8 * MiB
    node_timeout: Annotated[float, Field(gt=0)] = 30.0
    # Empty: the embedded default, six folder nodes under <data_dir>/nodes.
    nodes: tuple[NodeSettings, ...] = ()

    @model_validator(mode="after")
    def _code_shape(self) -> StorageSettings:
        if self.m > self.k or self.k + self.m > 16:
            raise ValueError("need 1 <= m <= k and k + m <= 16")
        if self.nodes:
            if len(self.nodes) < self.k + self.m:
                raise ValueError(f"{len(self.nodes)} nodes configured, k + m = {self.k + self.m}")
            names = [n.name for n in self.nodes]
            if len(set(names)) != len(names):
                raise ValueError("node names must be unique")
        return self


class DatabaseSettings(_Section):
    # Empty: SQLite at <data_dir>/index.sqlite3.
    url: str = ""

    @field_validator("url")
    @classmethod
    def _driver(cls, v: str) -> str:
        if v and not v.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return v


class ChainSettings(_Section):
    # "embedded": validators run inside the service; "remote": validators at the addresses
    # of the trust file (their client API), reached over HTTP(S).
    mode: Literal["embedded", "remote"] = "embedded"
    validators: Annotated[int, Field(ge=4, le=100)] = 4
    trust_file: Path | None = None
    # CA bundle that signed the validators' TLS certificates (remote mode, https addresses).
    ca_file: Path | None = None
    chain_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9._/:-]{1,128}$")] = "notary.local/dev"

    @model_validator(mode="after")
    def _remote_needs_trust(self) -> ChainSettings:
        if self.mode == "remote" and self.trust_file is None:
            raise ValueError("mode = remote needs trust_file (the validators and their addresses)")
        return self


class LimitsSettings(_Section):
    max_upload_bytes: Annotated[int, Field(ge=0)] = 4 * 1024 * MiB
    max_title_chars: Annotated[int, Field(ge=1)] = 512


class SealingSettings(_Section):
    """Master keys sealing confidential documents (docs/sealing.md). Neither set: the
    embedded default keeps one in <data_dir>/master.key; production runs unsealed."""

    # A file of master keys, one per line, oldest first (the last seals); mode 0600.
    master_key_file: Path | None = None
    # The same text inline, comma-separated (usually NOTARY_SEALING_MASTER_KEY).
    master_key: SecretStr | None = None
    record_size: Annotated[int, Field(ge=16, le=16 * MiB)] = 64 * 1024


class AuthSettings(_Section):
    """Who may call the API (docs/api.md). ``none``: every caller is the local admin,
    allowed only on a loopback host; ``tokens``: bearer tokens (``notary token create``)."""

    mode: Literal["none", "tokens"] = "none"


class Settings(_Section):
    data_dir: Path = Path("var")
    server: ServerSettings = ServerSettings()
    storage: StorageSettings = StorageSettings()
    database: DatabaseSettings = DatabaseSettings()
    chain: ChainSettings = ChainSettings()
    limits: LimitsSettings = LimitsSettings()
    sealing: SealingSettings = SealingSettings()
    auth: AuthSettings = AuthSettings()

    def database_url(self) -> str:
        """The configured database URL, or the embedded SQLite file under data_dir."""
        return self.database.url or f"sqlite+aiosqlite:///{self.data_dir / 'index.sqlite3'}"


def _env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    """Turn ``NOTARY_SECTION_KEY=value`` variables into a nested settings dict."""
    out: dict[str, Any] = {}
    sections = {
        name
        for name, field in Settings.model_fields.items()
        if isinstance(field.default, BaseModel)
    }
    for var, value in env.items():
        if not var.startswith(ENV_PREFIX) or var == "NOTARY_CONFIG":
            continue
        rest = var[len(ENV_PREFIX) :].lower()
        if rest == "data_dir":
            out["data_dir"] = value
            continue
        section, _, key = rest.partition("_")
        if section in sections and key:
            out.setdefault(section, {})[key] = value
    return out


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_settings(path: Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Load settings from ``path`` (or ``$NOTARY_CONFIG``) and the environment.

    Raises ConfigError with one line naming the offending setting.
    """
    env = os.environ if env is None else env
    if path is None and env.get("NOTARY_CONFIG"):
        path = Path(env["NOTARY_CONFIG"])
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as e:
            raise ConfigError(f"config file {path}: {e.strerror or e}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"config file {path}: not valid TOML: {e}") from None
    data = _merge(data, _env_overrides(env))
    try:
        return Settings.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise ConfigError(f"invalid setting {where}: {first['msg']}") from None

"""Client configuration of the ``notary`` command: file, then environment, then flags.

The file is ``$XDG_CONFIG_HOME/notary/config.toml`` (``~/.config/notary/config.toml``
when ``XDG_CONFIG_HOME`` is unset); it is optional. Every key is optional::

    url   = "https://notary.example.com"   # the service (default http://127.0.0.1:8080)
    token = "..."                          # bearer token (keep the file mode 0600)
    ca    = "ca.pem"                       # CA bundle for https (default: the system's)
    trust = "trust.json"                   # trust file for `notary checkpoint --verify`

Relative paths in the file are relative to the file's folder. Precedence, lowest first:
built-in default < file < environment (``NOTARY_URL``, ``NOTARY_TOKEN``, ``NOTARY_CA``,
``NOTARY_TRUST``) < command-line flags (``--url``, ``--token``, ``--ca``, ``--trust``).
An empty environment variable counts as unset. Each value remembers where it came from,
for ``notary config show``. Unknown keys in the file are an error (a typo would
otherwise silently fall back to a default).
"""

from __future__ import annotations

import functools
import json
import os
import stat
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from cli.output import fail

if TYPE_CHECKING:
    from cli.client import Client

DEFAULT_URL = "http://127.0.0.1:8080"
KEYS = ("url", "token", "ca", "trust")
ENV = {key: f"NOTARY_{key.upper()}" for key in KEYS}
_PATH_KEYS = ("ca", "trust")

F = TypeVar("F", bound=Callable[..., Any])


class SettingsError(Exception):
    """Unusable client configuration; the message names the file and the key."""


@dataclass(frozen=True)
class Setting:
    """One effective value and where it came from (``default``, ``file``, ``env``, ``flag``)."""

    value: str | None
    source: str
    origin: str  # the file path, variable name or flag that set it; "" for a default


@dataclass(frozen=True)
class ClientSettings:
    """The effective client configuration."""

    url: Setting
    token: Setting
    ca: Setting
    trust: Setting
    config_file: Path
    config_file_found: bool

    def path(self, key: str) -> Path | None:
        """The setting ``key`` (``ca`` or ``trust``) as a path, or None when unset."""
        value = getattr(self, key).value
        return Path(value) if value else None

    def client(self, timeout: float = 60.0) -> Client:
        """A client of the configured service (ClientConfigError for a bad URL or CA)."""
        from cli.client import Client

        return Client(
            self.url.value or DEFAULT_URL,
            token=self.token.value,
            ca=self.path("ca"),
            timeout=timeout,
        )

    def describe(self) -> dict[str, Any]:
        """Every value with its source, the token masked (for ``notary config show``)."""
        out: dict[str, Any] = {}
        for key in KEYS:
            setting: Setting = getattr(self, key)
            value = mask(setting.value) if key == "token" else setting.value
            out[key] = {"value": value, "source": setting.source, "from": setting.origin}
        out["config_file"] = {"path": str(self.config_file), "exists": self.config_file_found}
        return out


def mask(token: str | None) -> str | None:
    """A token shown safely: its length and last 4 characters at most."""
    if token is None:
        return None
    tail = token[-4:] if len(token) >= 16 else ""
    return f"****{tail} ({len(token)} characters)"


def config_path(env: Mapping[str, str]) -> Path:
    """The config file's path under ``XDG_CONFIG_HOME`` (default ``~/.config``)."""
    base = env.get("XDG_CONFIG_HOME") or ""
    root = Path(base) if Path(base).is_absolute() else Path.home() / ".config"
    return root / "notary" / "config.toml"


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as e:
        raise SettingsError(f"config file {path}: {getattr(e, 'strerror', None) or e}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SettingsError(f"config file {path}: not valid TOML: {e}") from None
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise SettingsError(
            f"config file {path}: unknown key {unknown[0]!r} (known: {', '.join(KEYS)})"
        )
    for key, value in data.items():
        if not isinstance(value, str) or not value:
            raise SettingsError(f"config file {path}: {key} must be a non-empty string")
    return data


def load_client_settings(
    flags: Mapping[str, str | None] | None = None,
    env: Mapping[str, str] | None = None,
    path: Path | None = None,
) -> ClientSettings:
    """The effective settings from the file (``path`` or the XDG default), ``env`` and
    ``flags`` (``{"url": ..., "token": ..., ...}``; None means not given).

    Raises SettingsError for an unreadable file, bad TOML, or an unknown key.
    """
    env = os.environ if env is None else env
    flags = flags or {}
    path = config_path(env) if path is None else path
    data = _read_file(path)
    found = path.is_file()
    values: dict[str, Setting] = {}
    for key in KEYS:
        setting = Setting(DEFAULT_URL if key == "url" else None, "default", "")
        if key in data:
            value = str(data[key])
            if key in _PATH_KEYS:
                value = str((path.parent / value).resolve())
            setting = Setting(value, "file", str(path))
        if env.get(ENV[key]):
            setting = Setting(env[ENV[key]], "env", ENV[key])
        if flags.get(key):
            setting = Setting(flags[key], "flag", f"--{key}")
        values[key] = setting
    return ClientSettings(config_file=path, config_file_found=found, **values)


def _warn_if_exposed(settings: ClientSettings) -> None:
    # Like ssh with its keys: a token in a file others can read is a leak waiting.
    if settings.token.source != "file":
        return
    try:
        mode = settings.config_file.stat().st_mode
    except OSError:
        return
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        click.echo(
            f"notary: warning: {settings.config_file} holds a token and is readable by"
            " others (chmod 600 it)",
            err=True,
        )


def client_options(*, trust: bool = False) -> Callable[[F], F]:
    """Add ``--url``, ``--token``, ``--ca`` (and ``--trust``) to a command; the command
    receives the effective :class:`ClientSettings` as ``settings`` instead.

    A bad config file ends the command with exit code 2 and one line on stderr.
    """

    def decorate(command: F) -> F:
        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            flags = {key: kwargs.pop(key, None) for key in KEYS}
            try:
                settings = load_client_settings(flags)
            except SettingsError as e:
                fail(2, str(e))
            _warn_if_exposed(settings)
            return command(*args, settings=settings, **kwargs)

        options = [
            click.option(
                "--url",
                default=None,
                metavar="URL",
                help=f"Service URL [env NOTARY_URL; {DEFAULT_URL}]",
            ),
            click.option(
                "--token",
                default=None,
                metavar="TOKEN",
                help="Bearer token [env NOTARY_TOKEN; prefer the env or config file]",
            ),
            click.option(
                "--ca",
                default=None,
                metavar="FILE",
                help="CA bundle (PEM) for https [env NOTARY_CA]",
            ),
        ]
        if trust:
            options.append(
                click.option(
                    "--trust",
                    default=None,
                    metavar="FILE",
                    help="Trust file of the validators [env NOTARY_TRUST]",
                )
            )
        decorated: Any = wrapper
        for option in reversed(options):
            decorated = option(decorated)
        return decorated  # type: ignore[no-any-return]

    return decorate


@click.group("config")
def config() -> None:
    """The client configuration (file, environment, flags)."""


@config.command("show")
@client_options(trust=True)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def show(settings: ClientSettings, as_json: bool) -> None:
    """Print the effective configuration and where each value came from (token masked)."""
    described = settings.describe()
    if as_json:
        click.echo(json.dumps(described, indent=1))
        return
    state = "found" if settings.config_file_found else "not found"
    click.echo(f"config file: {settings.config_file} ({state})")
    for key in KEYS:
        item = described[key]
        where = item["source"] + (f" {item['from']}" if item["from"] else "")
        click.echo(f"{key:6} {item['value'] if item['value'] is not None else '-'}   [{where}]")

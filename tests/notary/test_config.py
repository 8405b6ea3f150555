from pathlib import Path

import pytest

from notary.config import ConfigError, load_settings


def test_defaults_are_the_embedded_topology() -> None:
    s = load_settings(env={})
    assert (s.server.host, s.server.port) == ("127.0.0.1", 8080)
    assert (s.storage.k, s.storage.m, s.storage.nodes) == (4, 2, ())
    assert s.chain.mode == "embedded" and s.chain.validators == 4
    assert s.database_url() == "sqlite+aiosqlite:///var/index.sqlite3"


def test_file_then_environment_precedence(tmp_path: Path) -> None:
    cfg = tmp_path / "notary.toml"
    cfg.write_text(
        'data_dir = "/srv/notary"\n[server]\nport = 9000\n[database]\n'
        'url = "postgresql+asyncpg://db/notary"\n'
    )
    s = load_settings(cfg, env={"NOTARY_SERVER_PORT": "9100", "NOTARY_STORAGE_K": "6"})
    assert s.server.port == 9100
    assert s.storage.k == 6
    assert s.database_url() == "postgresql+asyncpg://db/notary"
    assert s.data_dir == Path("/srv/notary")


def test_s3_nodes_from_file_hide_their_secret(tmp_path: Path) -> None:
    nodes = "".join(
        f'[[storage.nodes]]\nkind = "s3"\nname = "s{i}"\nendpoint_url = "https://s3-{i}.example"\n'
        f'bucket = "b"\naccess_key = "AK"\nsecret_key = "TOPSECRET"\nzone = "z{i % 3}"\n'
        for i in range(6)
    )
    cfg = tmp_path / "n.toml"
    cfg.write_text(nodes)
    s = load_settings(cfg, env={})
    assert [n.name for n in s.storage.nodes] == [f"s{i}" for i in range(6)]
    assert "TOPSECRET" not in repr(s)


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({"NOTARY_SERVER_PORT": "http"}, "server.port"),
        ({"NOTARY_STORAGE_M": "5"}, "storage"),
        ({"NOTARY_DATABASE_URL": "mysql://x"}, "database.url"),
        ({"NOTARY_CHAIN_MODE": "cloud"}, "chain.mode"),
        ({"NOTARY_SERVER_TLS_CERT": "/c.pem"}, "server"),
    ],
)
def test_invalid_setting_names_it(env: dict[str, str], setting: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_settings(env=env)
    assert f"invalid setting {setting}" in str(e.value)
    assert "\n" not in str(e.value)


def test_unknown_key_in_file_is_rejected(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[server]\nprot = 1\n")
    with pytest.raises(ConfigError, match=r"server\.prot"):
        load_settings(cfg, env={})


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file"):
        load_settings(tmp_path / "missing.toml", env={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[server\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(bad, env={})

"""SaslAuthCache: refused logins in Postfix's smtp_sasl_auth_cache format, shared by processes."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest
import trio
from structlog.testing import capture_logs

from mailsys.errors import ConfigError
from mailsys.runtime.map_file import MapFile
from mailsys.runtime.smtp_sasl_cache import CachedRefusal, SaslAuthCache

T0 = 1_795_829_324
REPLY = "535 5.7.8 Authentication credentials invalid"
# What Postfix 3.7.11 stored after that reply to user alice@example.test,
# password "wrong" (postmap -s btree:.../sasl_auth_cache):
POSTFIX_ENTRY = ("127.0.0.1;alice@example.test",
                 f"{T0};pLSKgc2rHhpd03kH1shcocYd3Hw=;5.7.8;{REPLY}")


def cache(tmp_path, now=T0, ttl=90 * 86400) -> SaslAuthCache:
    table = MapFile.open(f"lmdb:{tmp_path}/sasl_auth_cache", param="smtp_sasl_auth_cache_name")
    return SaslAuthCache(table, ttl, clock=lambda: now)


def test_store_writes_postfixs_entry_and_find_answers_for_the_same_password(tmp_path):
    c = cache(tmp_path)

    async def run():
        await c.store("127.0.0.1", "alice@example.test", "wrong", "5.7.8", REPLY)
        assert c.table.entries == dict([POSTFIX_ENTRY])
        assert await c.find("127.0.0.1", "alice@example.test", "wrong") == CachedRefusal("5.7.8", REPLY)
        assert await c.find("127.0.0.1", "bob@example.test", "wrong") is None
        assert await c.find("mx.example.test", "alice@example.test", "wrong") is None
    trio.run(run)
    c.close()


def test_a_new_password_or_an_old_entry_is_deleted(tmp_path):
    c = cache(tmp_path)
    trio.run(c.table.put, *POSTFIX_ENTRY)
    assert trio.run(c.find, "127.0.0.1", "alice@example.test", "right") is None
    assert c.table.entries == {}
    c.close()
    old = cache(tmp_path, now=T0 + 90 * 86400 + 1)
    trio.run(old.table.put, *POSTFIX_ENTRY)
    assert trio.run(old.find, "127.0.0.1", "alice@example.test", "wrong") is None
    assert old.table.entries == {}
    old.close()
    edge = cache(tmp_path, now=T0 + 90 * 86400)          # time_stamp + ttl < now: still valid
    trio.run(edge.table.put, *POSTFIX_ENTRY)
    assert trio.run(edge.find, "127.0.0.1", "alice@example.test", "wrong") is not None
    edge.close()


@pytest.mark.parametrize("value", ["garbage", f"{T0};x;9.9.9;{REPLY}", f"{T0};x;5.7.8;"])
def test_a_malformed_entry_is_warned_about_and_deleted(tmp_path, value):
    c = cache(tmp_path)
    trio.run(c.table.put, "h;u", value)
    with capture_logs() as logs:
        assert trio.run(c.find, "h", "u", "p") is None
    assert [e["event"] for e in logs] == [f"bad smtp_sasl_auth_cache entry: {value[:100]}"]
    assert c.table.entries == {}
    c.close()


def test_an_entry_another_process_stored_is_found(tmp_path):
    c = cache(tmp_path)
    assert trio.run(c.find, "127.0.0.1", "alice@example.test", "wrong") is None
    code = ("import sys, trio; from mailsys.runtime.map_file import MapFile\n"
            "t = MapFile.open(sys.argv[1], param='smtp_sasl_auth_cache_name')\n"
            "trio.run(t.put, sys.argv[2], sys.argv[3]); t.close()\n")
    subprocess.run([sys.executable, "-c", code, f"lmdb:{tmp_path}/sasl_auth_cache",
                    *POSTFIX_ENTRY], check=True)
    assert trio.run(c.find, "127.0.0.1", "alice@example.test", "wrong") == CachedRefusal("5.7.8", REPLY)
    c.close()


def config(name, tmp_path):
    return SimpleNamespace(smtp_sasl_auth_cache_name=name, smtp_sasl_auth_cache_time=86400.0,
                           config_dir=tmp_path / "etc")


def test_from_config_wants_one_proxy_name(tmp_path):
    assert SaslAuthCache.from_config(config("", tmp_path)) is None
    # Postfix 3.7.11: "fatal: SASL authentication cache name "btree:/tmp/x"
    # must start with "proxy:" (its closing quote missing).
    with pytest.raises(ConfigError) as e:
        SaslAuthCache.from_config(config(f"btree:{tmp_path}/x", tmp_path))
    assert e.value.args[0] == (
        f'SASL authentication cache name "btree:{tmp_path}/x" must start with "proxy:')
    assert e.value.param == "smtp_sasl_auth_cache_name"
    with pytest.raises(ConfigError) as e:
        SaslAuthCache.from_config(config("proxy:btree:/a, proxy:btree:/b", tmp_path), "lmtp")
    assert "contains multiple values" in str(e.value) and e.value.param == "lmtp_sasl_auth_cache_name"
    c = SaslAuthCache.from_config(config(f"proxy:btree:{tmp_path}/c", tmp_path))
    assert c.ttl == 86400.0 and c.table.path == tmp_path / "c"
    c.close()

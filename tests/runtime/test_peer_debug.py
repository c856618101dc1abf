"""DebugPeers: debug_peer_list as a mynetworks-style match list."""

from __future__ import annotations

import pytest
import structlog

from mailsys.config.loader import load
from mailsys.errors import ConfigError
from mailsys.runtime.peer_debug import DebugPeers

pytestmark = pytest.mark.timeout(10)


def peers(tmp_path, text: str) -> DebugPeers | None:
    (tmp_path / "main.cf").write_text(text)
    return DebugPeers.from_config(load(tmp_path))


def test_empty_list_is_none(tmp_path):
    assert peers(tmp_path, "") is None


def test_networks_names_and_subdomains(tmp_path):
    p = peers(tmp_path, "debug_peer_list = 192.0.2.0/24, example.com, !10.0.0.1, 10.0.0.0/8\n"
                        "debug_peer_level = 3\n")
    assert p is not None and p.level == 3
    assert p.match("unknown", "192.0.2.9")
    assert p.match("mx.example.com", "198.51.100.1")       # parent_domain_matches_subdomains
    assert p.match("example.com", None)
    assert not p.match("unknown", "10.0.0.1") and p.match("unknown", "10.0.0.2")
    assert not p.match("other.example", "198.51.100.1")


def test_subdomains_need_a_dot_when_not_in_parent_domain_matches_subdomains(tmp_path):
    p = peers(tmp_path, "debug_peer_list = example.com\nparent_domain_matches_subdomains =\n")
    assert p.match("example.com", None) and not p.match("mx.example.com", None)


def test_a_table(tmp_path):
    p = peers(tmp_path, "debug_peer_list = inline:{ 192.0.2.5=x, peer.example=x }\n")
    assert p.match("unknown", "192.0.2.5") and p.match("peer.example", "192.0.2.6")
    assert not p.match("unknown", "192.0.2.6")


def test_bad_pattern_names_the_parameter(tmp_path):
    with pytest.raises(ConfigError, match="debug_peer_list"):
        peers(tmp_path, "debug_peer_list = 192.0.2.1/24\n")


def test_chat_logs_direction_and_peer():
    with structlog.testing.capture_logs() as logs:
        DebugPeers.chat(lambda: "unknown[127.0.0.1]")("<", "EHLO x")
    assert logs[0]["event"] == "< unknown[127.0.0.1]: EHLO x"


def test_level_below_one_is_refused(tmp_path):
    (tmp_path / "main.cf").write_text("debug_peer_list = 192.0.2.1\ndebug_peer_level = 0\n")
    with pytest.raises(ConfigError):
        load(tmp_path).debug_peer_level

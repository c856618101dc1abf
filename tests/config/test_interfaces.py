"""mailsys.config.interfaces: this host's addresses and the default mynetworks, as Postfix's."""

import ipaddress
import shutil
import subprocess

import pytest

from mailsys.config import load
from mailsys.config.interfaces import mynetworks, own_addresses, own_interfaces

# A host with two interfaces besides lo, one of them with two addresses.
TABLE = tuple(ipaddress.ip_interface(a) for a in (
    "127.0.0.1/8", "192.0.2.2/24", "172.16.5.9/12", "10.1.2.3/16",
    "::1/128", "2001:db8:1::25/64", "fe80::1/64"))


@pytest.mark.parametrize("style, expected", [
    ("host", "127.0.0.1/32 192.0.2.2/32 172.16.5.9/32 10.1.2.3/32 "
             "[::1]/128 [2001:db8:1::25]/128 [fe80::1]/128"),
    ("subnet", "127.0.0.0/8 192.0.2.0/24 172.16.0.0/12 10.1.0.0/16 "
               "[::1]/128 [2001:db8:1::]/64 [fe80::]/64"),
    # The natural class of each IPv4 address; IPv6 has no classes: its subnet.
    ("class", "127.0.0.0/8 192.0.2.0/24 172.16.0.0/16 10.0.0.0/8 "
              "[::1]/128 [2001:db8:1::]/64 [fe80::]/64"),
])
def test_mynetworks_styles_on_all_interfaces(style, expected):
    assert " ".join(mynetworks(["all"], ["all"], style, TABLE)) == expected


def test_inet_protocols_keeps_one_family():
    assert mynetworks(["all"], ["ipv4"], "host", TABLE)[-1] == "10.1.2.3/32"
    assert mynetworks(["all"], ["ipv6"], "host", TABLE)[0] == "[::1]/128"


def test_named_addresses_take_their_interfaces_netmask_in_ipv4_then_ipv6_order():
    words = ["[2001:db8:1::25]", "10.1.2.3", "loopback-only"]
    assert mynetworks(words, ["all"], "subnet", TABLE) == (
        "10.1.0.0/16", "127.0.0.0/8", "[2001:db8:1::]/64", "[::1]/128")


def test_an_address_no_interface_has_keeps_a_host_mask():
    assert mynetworks(["198.51.100.7"], ["all"], "subnet", TABLE) == ("198.51.100.7/32",)


def test_duplicates_are_dropped():
    assert mynetworks(["all", "127.0.0.1", "loopback-only"], ["all"], "subnet", TABLE)[:2] == (
        "127.0.0.0/8", "192.0.2.0/24")


def test_own_addresses_add_proxy_interfaces():
    own = own_addresses(["loopback-only"], ["198.51.100.7", "[2001:db8::7]"])
    assert {str(a) for a in own} == {"127.0.0.1", "::1", "198.51.100.7", "2001:db8::7"}


def test_this_hosts_loopback_interface_is_found():
    lo = own_interfaces(["all"], ["ipv4"])
    assert ipaddress.ip_interface("127.0.0.1/8") in lo
    assert all(i.version == 4 for i in lo)


def test_the_default_follows_inet_interfaces_and_mynetworks_style(tmp_path):
    (tmp_path / "main.cf").write_text("inet_interfaces = loopback-only\nmynetworks_style = subnet\n")
    cfg = load(tmp_path)
    assert cfg.mynetworks[0] == "127.0.0.0/8"
    assert cfg.smtpd_client_event_limit_exceptions == cfg.mynetworks


COMBINATIONS = [(interfaces, protocols, style)
                for interfaces in ("all", "loopback-only", "127.0.0.1")
                for protocols in ("all", "ipv4", "ipv6")
                for style in ("host", "subnet", "class")
                if not (interfaces == "127.0.0.1" and protocols == "ipv6")]


@pytest.mark.skipif(shutil.which("postconf") is None, reason="Postfix is not installed")
def test_mynetworks_is_postfixs_on_this_host(tmp_path):
    # postconf takes seconds to start here (it looks up the host name), so
    # all of them run at once.
    runs = []
    for n, (interfaces, protocols, style) in enumerate(COMBINATIONS):
        d = tmp_path / str(n)
        d.mkdir()
        (d / "main.cf").write_text(
            f"compatibility_level = 3.6\ninet_interfaces = {interfaces}\n"
            f"inet_protocols = {protocols}\nmynetworks_style = {style}\n")
        (d / "master.cf").write_text("")
        runs.append((d, subprocess.Popen(["postconf", "-c", str(d), "-h", "mynetworks"],
                                         stdout=subprocess.PIPE, text=True)))
    differ = {}
    for (d, proc), combination in zip(runs, COMBINATIONS):
        postfix = proc.communicate(timeout=30)[0].split()
        ours = list(load(d).mynetworks)
        if proc.returncode != 0 or ours != postfix:
            differ[combination] = (ours, postfix)
    assert differ == {}

"""mailsys saslpasswd as a user runs it: a subprocess with -c DIR."""

import base64
import hmac
import os
import stat
import subprocess
import sys

import pytest

from mailsys.sasl.server import SaslServer, Success
from mailsys.sasl.users import UserDatabase


def run(config_dir, *args, stdin=""):
    return subprocess.run([sys.executable, "-m", "mailsys.cli.main", "-c", str(config_dir),
                           "saslpasswd", *args], input=stdin, capture_output=True, text=True,
                          timeout=30)


@pytest.fixture
def etc(tmp_path):
    d = tmp_path / "etc"
    d.mkdir()
    (d / "main.cf").write_text("myhostname = mx.example.com\n")
    return d


def plain(user, password):
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def test_add_list_delete(etc):
    r = run(etc, "add", "bob", stdin="bob secret\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "" and r.stderr == ""
    path = etc / "sasl_users"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert "bob secret" not in path.read_text()
    server = SaslServer(UserDatabase(path), "mx")
    assert server.begin("PLAIN").start(plain("bob", "bob secret")) == Success("PLAIN", "bob")
    assert server.mechanisms() == ("PLAIN", "LOGIN")

    assert run(etc, "add", "--cram-md5", "alice", stdin="password\n").returncode == 0
    assert run(etc, "list").stdout == "bob\nalice\n"
    assert server.mechanisms() == ("PLAIN", "LOGIN", "CRAM-MD5")
    # alice's line: the scrypt hash for PLAIN/LOGIN, then Dovecot's {CRAM-MD5}
    # form, here what `doveadm pw -s CRAM-MD5 -p password` prints
    alice = [line for line in path.read_text().splitlines() if line.startswith("alice:")]
    assert len(alice) == 1
    name, scrypt, cram = alice[0].split(":")
    assert scrypt.startswith("$scrypt$")
    assert cram == "{CRAM-MD5}9186d855e11eba527a7a52ca82b313e180d62234f0acc9051b527243d41e2740"
    assert server.begin("PLAIN").start(plain("alice", "password")) == Success("PLAIN", "alice")
    ex = server.begin("CRAM-MD5")
    challenge = base64.b64decode(ex.start(None).data)
    response = "alice " + hmac.new(b"password", challenge, "md5").hexdigest()
    assert ex.respond(base64.b64encode(response.encode()).decode()) == Success("CRAM-MD5", "alice")

    # replacing a password keeps one entry
    assert run(etc, "add", "bob", stdin="new\n").returncode == 0
    assert run(etc, "list").stdout == "bob\nalice\n"
    assert server.begin("PLAIN").start(plain("bob", "new")) == Success("PLAIN", "bob")

    r = run(etc, "delete", "bob")
    assert r.returncode == 0, r.stderr
    assert run(etc, "list").stdout == "alice\n"
    assert server.begin("PLAIN").start(plain("bob", "new")) != Success("PLAIN", "bob")


def test_delete_unknown_user_is_one_line_exit_1(etc):
    r = run(etc, "delete", "nobody")
    assert r.returncode == 1
    assert r.stderr == "saslpasswd: fatal: unknown user: nobody\n"


def test_empty_password_refused(etc):
    r = run(etc, "add", "bob", stdin="\n")
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "empty password" in r.stderr
    assert not (etc / "sasl_users").exists()


@pytest.mark.parametrize("args", [[], ["frob"], ["add"], ["list", "x"], ["delete", "--cram-md5", "x"],
                                  ["add", "a:b"]])
def test_usage_errors(etc, args):
    r = run(etc, *args)
    assert r.returncode == 64
    assert r.stderr.startswith("saslpasswd: fatal: ") and r.stderr.count("\n") == 1
    assert "Traceback" not in r.stderr


def test_users_file_parameter_is_honoured(etc, tmp_path):
    other = tmp_path / "auth" / "users"
    other.parent.mkdir()
    (etc / "main.cf").write_text(f"smtpd_sasl_users_file = {other}\n")
    assert run(etc, "add", "bob", stdin="pw\n").returncode == 0
    assert other.exists() and not (etc / "sasl_users").exists()

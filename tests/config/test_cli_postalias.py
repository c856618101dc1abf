"""mailsys postalias / newaliases: aliases(5) source to lmdb, read back by hash: and lmdb:."""

from mailsys.config import load
from mailsys.config.tables import open_table


def test_postalias_compiles_and_hash_reads_it(confdir, tmp_path, run_cli):
    d = confdir("")
    src = tmp_path / "aliases"
    src.write_text('# aliases\npostmaster: root\nRoot: alice,\n  bob@example.net\n"quoted name": carol\n')
    r = run_cli(d, "postalias", f"hash:{src}")
    assert (r.returncode, r.stderr) == (0, "")
    assert (tmp_path / "aliases.lmdb").exists()
    for kind in ("hash", "lmdb"):
        r = run_cli(d, "postalias", "-q", "ROOT", f"{kind}:{src}")
        assert (r.returncode, r.stdout) == (0, "alice, bob@example.net\n")
    r = run_cli(d, "postalias", "-q", "quoted name", f"hash:{src}")
    assert r.stdout == "carol\n"
    r = run_cli(d, "postalias", "-q", "nobody-here", f"hash:{src}")
    assert (r.returncode, r.stdout) == (1, "")


def test_postalias_warnings_and_errors(confdir, tmp_path, run_cli):
    d = confdir("")
    src = tmp_path / "bad"
    src.write_text("a: b\nlonely\na: c\n")
    r = run_cli(d, "postalias", f"lmdb:{src}")
    assert r.returncode == 0
    assert r.stderr == (f"postalias: warning: {src}, line 2: need name:value pair\n"
                        f'postalias: warning: lmdb:{src}: duplicate entry: "a"\n')
    assert run_cli(d, "postalias", "-q", "a", f"lmdb:{src}").stdout == "b\n"
    r = run_cli(d, "postalias", f"lmdb:{tmp_path}/missing")
    assert (r.returncode, r.stderr) == (1, f"postalias: fatal: open {tmp_path}/missing: "
                                           "No such file or directory\n")
    # src/global/dynamicmaps.c, seen live with Postfix 3.7.11.
    r = run_cli(d, "postalias", f"texthash:{src}")
    assert (r.returncode, r.stderr) == (1, "postalias: fatal: unsupported dictionary type: "
                                           "texthash does not support bulk-mode creation.\n")
    r = run_cli(d, "postalias")
    assert (r.returncode, r.stderr) == (1, "postalias: fatal: usage: postalias [-Nfinoprsuvw] "
                                           "[-c config_dir] [-d key] [-q key] [map_type:]file...\n")


def test_newaliases_compiles_alias_database(confdir, tmp_path, run_cli):
    src = tmp_path / "aliases"
    src.write_text("root: alice\n")
    other = tmp_path / "more"
    other.write_text("list: :include:/etc/list\n")
    # relative names are taken from the parent of the configuration directory
    d = confdir(f"alias_database = hash:{src}, lmdb:more\nalias_maps = $alias_database\n")
    r = run_cli(d, "newaliases")
    assert (r.returncode, r.stderr) == (0, "")
    cfg = load(d)
    tables = [open_table(spec, cfg) for spec in cfg.alias_maps]
    assert tables[0].lookup("root") == "alice"
    assert tables[1].lookup("LIST") == ":include:/etc/list"


def test_newaliases_with_nothing_to_do(confdir, run_cli):
    r = run_cli(confdir(""), "newaliases")
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")


def test_sendmail_bi_and_I_are_newaliases(confdir, tmp_path, run_cli):
    src = tmp_path / "aliases"
    # Postfix's sendmail changes to the queue directory first, in every mode.
    (tmp_path / "queue").mkdir()
    d = confdir(f"alias_database = hash:{src}\nalias_maps = $alias_database\n"
                f"queue_directory = {tmp_path}/queue\n")
    for flag in ("-bi", "-I"):
        src.write_text(f"root: {flag}\n")
        r = run_cli(d, "sendmail", flag)
        assert (r.returncode, r.stderr) == (0, "")
        assert run_cli(d, "postalias", "-q", "root", f"hash:{src}").stdout == f"{flag}\n"


def test_sendmail_oa_builds_the_named_table(confdir, tmp_path, run_cli):
    # sendmail.c: -bi with -oAfile runs "postalias -- file" instead of
    # $alias_database; "-oA" alone is "fatal: -oA requires pathname".
    src = tmp_path / "other"
    src.write_text("root: other\n")
    (tmp_path / "queue").mkdir()
    d = confdir(f"alias_database = hash:{tmp_path}/unused\nqueue_directory = {tmp_path}/queue\n")
    r = run_cli(d, "sendmail", "-bi", f"-oAhash:{src}")
    assert (r.returncode, r.stderr) == (0, "")
    assert run_cli(d, "postalias", "-q", "root", f"hash:{src}").stdout == "other\n"
    assert not (tmp_path / "unused.db").exists()

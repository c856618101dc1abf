"""MapFile: a daemon's read-write table in an LMDB file, or in memory."""

from __future__ import annotations

import pytest
import trio

from mailsys.errors import ConfigError
from mailsys.runtime.map_file import MapFile


@pytest.mark.parametrize("kind", ["btree", "hash", "lmdb"])
def test_entries_survive_a_reopen(tmp_path, kind):
    spec = f"{kind}:{tmp_path}/data/verify_cache"

    async def write():
        table = MapFile.open(spec, param="address_verify_map")
        await table.put("a@example.com", "0:0:1800000000:250 Ok")
        await table.put("b@example.com", "2:0:1800000000:550 no")
        await table.put("c@example.com", "3:1800000000:0:in progress")
        await table.delete("c@example.com")
        await table.delete("never@example.com")          # absent: nothing to do
        await table.drop(["b@example.com"])
        table.close()
    trio.run(write)
    assert (tmp_path / "data" / "verify_cache").is_file()
    again = MapFile.open(spec, param="address_verify_map")
    try:
        assert again.entries == {"a@example.com": "0:0:1800000000:250 Ok"}
        assert again.spec == spec and again.path == tmp_path / "data" / "verify_cache"
    finally:
        again.close()


@pytest.mark.parametrize("spec", ["", "memory", "internal:verify"])
def test_memory_maps_keep_nothing_on_disk(tmp_path, spec):
    table = MapFile.open(spec, param="address_verify_map")
    trio.run(table.put, "a", "b")
    assert table.entries == {"a": "b"} and table.path is None
    table.close()


@pytest.mark.parametrize("spec", ["cdb:/x", "btree:", "btree", "ldap:/etc/x.cf"])
def test_unsupported_maps_name_the_parameter(spec):
    with pytest.raises(ConfigError) as e:
        MapFile.open(spec, param="address_verify_map")
    assert "address_verify_map" in str(e.value)

"""The inventory's groups as written (llamafleet.inventory_data.inventory_file_groups), which the
shadowed-key rule compares with what pyinfra made of them after merging group data files."""

from __future__ import annotations

from llamafleet.inventory_data import inventory_file_groups, load_inventory_full

INVENTORY = '''
import os
phones = (["phone1"], {"rpc_threads": 4, "where": os.path.basename(__file__)})
boxes = ["box"]
_spare = (["spare"], {"rpc_threads": 9})
'''


def test_groups_with_data_as_written(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text(INVENTORY)
    groups = inventory_file_groups(path)
    # Lists carry no data, `_` names are no groups, modules are not groups: only `phones`.
    assert groups == {"phones": (["phone1"], {"rpc_threads": 4, "where": "mine.py"})}


def test_a_group_data_file_replacing_a_named_groups_value_is_reported(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text(INVENTORY)
    (tmp_path / "group_data").mkdir()
    (tmp_path / "group_data" / "phones.py").write_text("rpc_threads = 2\n")
    loaded = load_inventory_full(path)
    phone = next(h for h in loaded.hosts if h.name == "phone1")
    assert phone.data["rpc_threads"] == 2  # pyinfra's merge: the file wins
    assert [(s.group, s.key, s.inventory_value, s.effective_value) for s in loaded.shadowed] == [
        ("phones", "rpc_threads", 4, 2)]

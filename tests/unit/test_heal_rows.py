"""The groups of workers the master may serve with when some are away (llamafleet.plan.heal)."""

from llamafleet.plan.heal import ALL_GROUPS_UP_TO, degraded_rows, ram_planner

NAMES = ["phone1", "linux1", "phone2"]
ENDPOINTS = ["127.0.0.1:50052", "10.0.0.2:50053", "127.0.0.1:50054"]


def test_groups_that_hold_the_model_best_first_split_by_usable_ram():
    rows = degraded_rows(NAMES, ENDPOINTS, ram_planner([1000, 3000, 500], 1200))
    # Pairs before singles, more usable RAM first; phone1 alone (1000 MB) and phone2 alone
    # (500 MB) cannot hold 1200 MB.
    assert [row.workers for row in rows] == [("phone1", "linux1"), ("linux1", "phone2"), ("phone1", "phone2"),
                                             ("linux1",)]
    assert rows[0].rpc == "127.0.0.1:50052,10.0.0.2:50053" and rows[0].tensor_split == "0.25,0.75"
    assert ("phone1", "phone2") not in [row.workers for row in degraded_rows(NAMES, ENDPOINTS, ram_planner([1000, 3000, 500], 1600))]


def test_a_hand_split_is_rescaled_and_a_share_beyond_usable_ram_leaves_the_group_out():
    rows = degraded_rows(NAMES, ENDPOINTS, ram_planner([1000, 3000, 500], 1200, hand_split=[0.2, 0.4, 0.4]))
    by_group = {row.workers: row.tensor_split for row in rows}
    assert by_group[("phone1", "linux1")] == "0.333,0.667"
    assert ("phone1", "phone2") not in by_group  # phone2 would hold 600 MB of its 500
    assert ("linux1",) in by_group and ("phone2",) not in by_group


def test_many_workers_plan_only_the_groups_missing_one_or_two():
    count = ALL_GROUPS_UP_TO + 2
    names = [f"w{i}" for i in range(count)]
    rows = degraded_rows(names, [f"10.0.0.{i}:50052" for i in range(count)], ram_planner([1000] * count, 500))
    assert {len(row.workers) for row in rows} == {count - 1, count - 2}
    assert len(rows) == count + count * (count - 1) // 2

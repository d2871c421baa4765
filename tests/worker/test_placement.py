"""Placement is pure arithmetic: the same loads always give the same hosts, for the stated reasons."""

import pytest

from worker.placement import HostLoad, PlacementError, place, place_many

LIMIT = 250


def host(host_id, name, *, memory_mb=1024, used=0, same_release=0, same_process_type=0, organization=0):
    return HostLoad(host_id, name, memory_mb, used, same_release, same_process_type, organization)


def test_spread_comes_before_free_memory():
    crowded = host(1, "a", same_release=1, same_process_type=1)
    busy = host(2, "b", used=900)
    assert place([crowded, busy], 64, organization_limit=LIMIT).host_id == 2


def test_ties_go_to_the_most_free_memory_then_the_name():
    assert place([host(1, "b", used=100), host(2, "a", used=200)], 64, organization_limit=LIMIT).host_id == 1
    assert place([host(1, "b"), host(2, "a")], 64, organization_limit=LIMIT).host_id == 2


def test_memory_is_respected_and_the_error_says_how_much_is_free():
    with pytest.raises(PlacementError, match=r"No host has 512 MB free; the most is 324 MB on b\."):
        place([host(1, "a", used=900), host(2, "b", used=700)], 512, organization_limit=LIMIT)


def test_a_host_whose_organization_network_is_full_gets_nothing_more():
    full = host(1, "a", organization=LIMIT)
    assert place([full, host(2, "b", used=1000 - 64)], 64, organization_limit=LIMIT).host_id == 2
    with pytest.raises(PlacementError, match="250 of this organization's containers"):
        place([full], 64, organization_limit=LIMIT)


def test_no_host_at_all_is_a_clear_error():
    with pytest.raises(PlacementError, match="No host is active and up"):
        place([], 64, organization_limit=LIMIT)


def test_containers_placed_together_spread_as_if_started_one_by_one():
    hosts = [host(1, "a"), host(2, "b"), host(3, "c", same_release=1, same_process_type=1)]
    chosen = [p.host_id for p in place_many(hosts, 64, 5, organization_limit=LIMIT)]
    assert chosen == [1, 2, 3, 1, 2]  # c has one already, but then more memory free
    one_by_one = []
    loads = list(hosts)
    for _ in range(5):
        picked = place(loads, 64, organization_limit=LIMIT).host_id
        one_by_one.append(picked)
        loads = [
            host(
                h.host_id,
                h.name,
                used=h.memory_used_mb + 64,
                same_release=h.same_release + 1,
                same_process_type=h.same_process_type + 1,
                organization=h.organization_containers + 1,
            )
            if h.host_id == picked
            else h
            for h in loads
        ]
    assert chosen == one_by_one


def test_placing_together_is_all_or_nothing():
    with pytest.raises(PlacementError, match="No host has 400 MB free"):
        place_many([host(1, "a"), host(2, "b")], 400, 5, organization_limit=LIMIT)
    with pytest.raises(PlacementError, match="2 of this organization's containers"):
        place_many([host(1, "a"), host(2, "b")], 64, 5, organization_limit=2)

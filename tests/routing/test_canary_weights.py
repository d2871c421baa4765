"""The arithmetic of a canary: how many replicas it runs, and the server weights that give it its share of
the requests whatever the replica counts (docs/deploys.md#canary-releases)."""

from fractions import Fraction

import pytest

from berth.deployments.canary import canary_quantity, routed_process_types
from berth.routing.selectors import Upstream, _weighed
from berth.routing.weights import MAX_WEIGHT, share, split_weights


@pytest.mark.parametrize(
    ("quantity", "weight", "replicas"),
    [(3, 10, 1), (3, 25, 1), (3, 50, 2), (2, 50, 1), (10, 25, 3), (10, 5, 1), (1, 99, 1), (4, 99, 4), (0, 50, 0)],
)
def test_a_canary_runs_its_share_of_the_replicas_rounded_half_up_and_at_least_one(quantity, weight, replicas):
    assert canary_quantity(quantity, weight) == replicas


def test_a_canary_never_runs_more_replicas_than_the_release():
    assert all(canary_quantity(q, w) <= q for q in range(101) for w in range(1, 100))


def test_weights_give_the_canary_its_share_whatever_the_replica_counts():
    """Every formation of up to 100 replicas at every weight, and with a replica missing on either side (a
    heal under way): within a twentieth of a point, and exactly wherever the exact weights fit in 1..256."""
    for percent in range(1, 100):
        for quantity in range(1, 101):
            canaries = canary_quantity(quantity, percent)
            for old in {quantity - 1, quantity} - {0}:
                for new in {canaries - 1, canaries} - {0}:
                    mine, theirs = split_weights(percent, old, new)
                    assert 1 <= mine <= MAX_WEIGHT and 1 <= theirs <= MAX_WEIGHT
                    error = abs(share(mine, theirs, old, new) - Fraction(percent, 100))
                    assert error < Fraction(1, 2000), (percent, old, new, mine, theirs)
                    exact = Fraction((100 - percent) * new, percent * old)
                    if max(exact.numerator, exact.denominator) <= MAX_WEIGHT:
                        assert error == 0, (percent, old, new)


def test_where_exact_weights_cannot_fit_the_closest_pair_is_used():
    # 1% with 3 canary replicas beside 1 old one would need 297:1; 256:1 is as close as HAProxy goes.
    assert split_weights(1, 1, 3) == (256, 1)


@pytest.mark.parametrize(
    ("percent", "old", "new", "weights"),
    [(10, 3, 1, (3, 1)), (25, 3, 1, (1, 1)), (50, 2, 1, (1, 2)), (10, 10, 1, (9, 10)), (99, 1, 1, (1, 99))],
)
def test_weights_are_reduced(percent, old, new, weights):
    assert split_weights(percent, old, new) == weights


def test_only_canary_servers_or_no_canary_server_weigh_the_same():
    a, b = Upstream("c1", "10.0.0.1", 1), Upstream("c2", "10.0.0.2", 2)
    assert _weighed([(a, False), (b, False)], 10) == [a, b]
    assert _weighed([(a, True), (b, True)], 10) == [a, b]
    assert _weighed([(a, False), (b, True)], None) == [a, b]
    assert [u.weight for u in _weighed([(a, False), (b, True)], 10)] == [9, 1]


def test_a_canary_runs_the_process_types_that_take_http_in_both_releases():
    web = {"command": [], "port": 8080, "health": {"type": "none", "command": []}}
    worker = {"command": ["work"], "port": None, "health": {"type": "none", "command": []}}
    api = {**web, "http": True}
    running = {"web": web, "worker": worker}
    assert routed_process_types({"web": web, "worker": worker}, running) == ["web"]
    assert routed_process_types({"web": web, "api": api}, running) == ["web"]
    assert routed_process_types({"api": api}, running) == []

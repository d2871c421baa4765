"""Placement is pure arithmetic: the same loads always give the same hosts, for the stated reasons."""

from dataclasses import replace

import pytest

from worker.placement import HostLoad, PlacementError, place, place_many

LIMIT = 250


def host(host_id, name, *, memory_mb=1024, used=0, same_release=0, same_process_type=0, organization=0, failures=0):
    return HostLoad(
        host_id,
        name,
        memory_mb,
        used,
        same_release,
        same_process_type,
        organization_containers=organization,
        recent_failures=failures,
    )


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


def test_an_image_that_runs_as_root_goes_to_hosts_that_remap_user_namespaces_first():
    plain = host(1, "a")
    remapping = replace(host(2, "b", used=800, same_release=2, same_process_type=2), userns_remap=True)
    chosen = place([plain, remapping], 64, organization_limit=LIMIT, root_image=True)
    assert chosen.host_id == 2 and "the image runs as root, which this host remaps" in chosen.reason
    # Other images spread as before; and with no remapping host that fits, a root image still runs.
    assert place([plain, remapping], 64, organization_limit=LIMIT).host_id == 1
    chosen = place([plain, replace(remapping, memory_used_mb=1000)], 64, organization_limit=LIMIT, root_image=True)
    assert chosen.host_id == 1 and "it runs as uid 65534" in chosen.reason
    placed = place_many(
        [plain, remapping, replace(remapping, host_id=3, name="c")], 64, 4, organization_limit=LIMIT, root_image=True
    )
    assert sorted(p.host_id for p in placed) == [2, 2, 3, 3]


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


def test_a_host_where_new_containers_keep_failing_comes_after_every_other_fitting_host():
    """Its address may be cut off while its engine answers: the issue's host that got every replacement."""
    failing = host(1, "a", failures=2)  # emptier, roomier and first by name, yet tried last
    crowded = host(2, "b", used=900, same_release=3, same_process_type=3)
    chosen = place([failing, crowded], 64, organization_limit=LIMIT)
    assert chosen.host_id == 2
    assert chosen.reason.endswith(
        "; passed over, as new containers recently failed their health checks there: a (2 failed)"
    )
    # One failure is chance, not a pattern: spread decides.
    assert place([host(1, "a", failures=1), crowded], 64, organization_limit=LIMIT).host_id == 1


def test_the_failure_rule_is_soft_when_every_host_fails_or_only_the_failing_one_fits():
    """A bad release fails everywhere: it is still placed, by the usual rules, and its deployment says why it failed."""
    both = [host(1, "a", failures=5, same_release=1), host(2, "b", failures=2)]
    chosen = place(both, 64, organization_limit=LIMIT)
    assert chosen.host_id == 2
    assert "recently failed their health checks on every fitting host (2 here)" in chosen.reason
    only_fit = [host(1, "a", failures=3), host(2, "b", used=1000)]
    assert place(only_fit, 64, organization_limit=LIMIT).host_id == 1
    assert [p.host_id for p in place_many([*both, host(3, "c")], 64, 3, organization_limit=LIMIT)] == [3, 3, 3]


@pytest.mark.django_db
def test_hosts_with_load_counts_what_placement_weighs():
    """The selector placement reads: only hosts that take containers, and per host the memory of its
    live containers and how many are the organization's, this process type's and this release's."""
    from berth.applications.models import Release
    from berth.fleet.models import Container, DockerHost
    from berth.fleet.selectors import hosts_with_load
    from tests.factories import AppFactory, ContainerFactory, HostFactory, SizeFactory

    small, big = SizeFactory(name="small", memory_mb=64), SizeFactory(name="big", memory_mb=512)
    app = AppFactory()
    other_app = AppFactory(organization=app.organization)
    stranger = AppFactory()
    v1, v2 = (Release.objects.create(app=app, version=v, image="x", process_types={}, config={}) for v in (1, 2))
    busy, idle = HostFactory(), HostFactory()
    HostFactory(state=DockerHost.State.CORDONED)
    HostFactory(status=DockerHost.Status.DOWN)

    def container(on, owner, release, size, *, process_type="web", state=Container.State.RUNNING):
        release = release or Release.objects.create(
            app=owner, version=owner.releases.count() + 1, image="x", process_types={}, config={}
        )
        ContainerFactory(host=on, app=owner, release=release, size=size, process_type=process_type, state=state)

    container(busy, app, v2, small)  # this release's web
    container(busy, app, v1, big)  # the old release's web
    container(busy, app, v2, small, process_type="worker")
    container(busy, other_app, None, small)  # the organization's, another app
    container(busy, stranger, None, big)  # another organization's
    container(busy, app, v2, big, state=Container.State.EXITED)  # not live: counts nowhere
    container(busy, app, v2, big, state=Container.State.CREATED)  # live though not running yet

    loads = {
        h.pk: (h.memory_used_mb, h.organization_containers, h.same_process_type, h.same_release)
        for h in hosts_with_load(
            organization_id=app.organization_id, app_id=app.pk, process_type="web", release_id=v2.pk
        )
    }
    assert loads == {busy.pk: (64 + 512 + 64 + 64 + 512 + 512, 5, 3, 2), idle.pk: (0, 0, 0, 0)}


@pytest.mark.django_db
def test_hosts_with_load_counts_new_containers_that_recently_failed_to_become_healthy():
    """Never healthy and no longer live (or found unhealthy), created in the last 10 minutes; a degraded
    host is not offered at all."""
    from datetime import timedelta

    from django.utils import timezone

    from berth.applications.models import Release
    from berth.fleet.models import Container, DockerHost
    from berth.fleet.selectors import hosts_with_load
    from tests.factories import AppFactory, ContainerFactory, HostFactory, SizeFactory

    size, app = SizeFactory(name="small", memory_mb=64), AppFactory()
    release = Release.objects.create(app=app, version=1, image="x", process_types={}, config={})
    cut_off, fine = HostFactory(), HostFactory()
    HostFactory(status=DockerHost.Status.DEGRADED)
    now = timezone.now()

    def container(on, *, state, health=Container.Health.UNKNOWN, healthy_at=None, age=timedelta(minutes=1)):
        ContainerFactory(
            host=on, app=app, release=release, size=size, state=state, health=health,
            healthy_at=healthy_at, created_at=now - age,
        )  # fmt: skip

    container(cut_off, state=Container.State.REMOVED)  # stopped: it did not become healthy
    container(cut_off, state=Container.State.EXITED)  # crashed before it was healthy
    container(cut_off, state=Container.State.RUNNING, health=Container.Health.UNHEALTHY)  # given up on
    container(cut_off, state=Container.State.RUNNING, health=Container.Health.STARTING)  # still starting
    container(cut_off, state=Container.State.REMOVED, healthy_at=now)  # served, then replaced
    container(cut_off, state=Container.State.REMOVED, age=timedelta(minutes=11))  # too long ago
    container(fine, state=Container.State.REMOVED, healthy_at=now)

    failures = {
        h.pk: h.recent_failures
        for h in hosts_with_load(
            organization_id=app.organization_id, app_id=app.pk, process_type="web", release_id=release.pk
        )
    }
    assert failures == {cut_off.pk: 3, fine.pk: 0}


@pytest.mark.django_db
def test_choose_hosts_steers_away_from_a_host_where_new_containers_failed_and_says_so():
    from berth.applications.models import Release
    from berth.applications.specs import ProcessType
    from berth.fleet.models import Container
    from tests.factories import AppFactory, ContainerFactory, HostFactory, SizeFactory
    from worker.runtime import choose_hosts

    size, app = SizeFactory(name="small", memory_mb=64), AppFactory()
    web = ProcessType("web")
    release = Release.objects.create(app=app, version=1, image="x", process_types={"web": web.as_json()}, config={})
    app.current_release = release
    cut_off, fine = HostFactory(name="a-cut-off"), HostFactory(name="b-fine", memory_mb=1024)
    for _ in range(2):
        ContainerFactory(host=cut_off, app=app, release=release, size=size, state=Container.State.REMOVED)

    [chosen] = choose_hosts(release=release, process=web, size=size, count=1)

    assert chosen.host == fine
    assert chosen.reason.endswith(
        "passed over, as new containers recently failed their health checks there: a-cut-off (2 failed)"
    )

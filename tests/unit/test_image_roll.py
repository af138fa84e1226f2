"""New images roll into idle slots by themselves: after a runtime's image changes, the
pool converge rebuilds idle slots on an older image a step at a time (at most ``step``
of the pool being built at once), never while launches wait; assigned slots keep their
image until released (their recycle builds the new one) or reinitialized."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import AbstractUser
from pytest_django.fixtures import Settings as SettingsWrapper

from deployments.models import Deployment
from deployments.services import deployment_create, deployment_release
from pools import services
from pools.models import PoolContainer, Runtime, SlotStatus
from tests.fakes import FakeEngine

pytestmark = pytest.mark.django_db(transaction=True)
S = SlotStatus
OLD, NEW = "paas/nginx:test", "paas/nginx:new"


@pytest.fixture
def new_image(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """``new_image()``: the runtime's image changes (as after ``pool build-images``)."""
    def change() -> None:
        monkeypatch.setattr(services, "runtime_image", lambda runtime: NEW)
    return change


def images(engine: FakeEngine) -> dict[int, str]:
    """slot id → the image its current container runs (on the engine)."""
    running = {info.id: engine.specs[info.id].image for info in engine.containers.values()}
    return {slot.pk: running[slot.container_id] for slot in PoolContainer.objects.all()}


def pool(size: int, step: int) -> Runtime:
    Runtime.objects.filter(name="nginx").update(pool_size=size, step=step)
    return Runtime.objects.get(name="nginx")


def test_a_built_slot_records_its_image(warm: Callable, fake_engine: FakeEngine) -> None:
    warm("nginx", 2)
    assert set(PoolContainer.objects.values_list("image", flat=True)) == {OLD}
    assert set(images(fake_engine).values()) == {OLD}


def test_idle_slots_roll_to_the_new_image_a_step_at_a_time(
        warm: Callable, fake_engine: FakeEngine, new_image: Callable[[], None]) -> None:
    warm("nginx", 5)
    runtime = pool(5, step=2)
    new_image()
    rolled = []
    for _ in range(5):
        # Each converge (under the lease, as every caller runs it) rolls at most a step;
        # the built ones are idle again at once (tasks run inline here).
        before = PoolContainer.objects.filter(image=NEW).count()
        result = services.pool_converge_locked(runtime_name=runtime.name)
        rolled.append(result["rolled"])
        assert PoolContainer.objects.filter(image=NEW).count() - before == result["rolled"]
    assert rolled[:3] == [2, 2, 1] and sum(rolled) == 5
    assert set(images(fake_engine).values()) == {NEW}
    assert PoolContainer.objects.filter(status=S.IDLE).count() == 5
    assert PoolContainer.objects.count() == 5


def test_the_roll_never_builds_more_than_a_step_at_once(
        warm: Callable, new_image: Callable[[], None]) -> None:
    warm("nginx", 5)
    runtime = pool(5, step=2)
    new_image()
    services.slots_roll_image(runtime=runtime)  # two move to provisioning, not built yet
    assert PoolContainer.objects.filter(status=S.PROVISIONING).count() == 2
    assert services.slots_roll_image(runtime=runtime) == []  # a step is in flight
    assert PoolContainer.objects.filter(status=S.IDLE).count() == 3  # 5 - step claimable


def test_an_elastic_pool_keeps_min_idle_minus_step_claimable(
        warm: Callable, new_image: Callable[[], None], settings: SettingsWrapper) -> None:
    warm("nginx", 3)
    settings.PAAS_ELASTIC = True
    runtime = pool(5, step=2)  # the pool is short of min idle: 3 idle, min idle 5
    new_image()
    rolled = services.slots_roll_image(runtime=runtime)
    assert len(rolled) == 0  # 3 claimable, and min idle - step = 3: none may go


def test_no_roll_while_launches_wait(warm: Callable, new_image: Callable[[], None],
                                     alice: AbstractUser) -> None:
    warm("nginx", 4)
    runtime = pool(4, step=2)
    Deployment.objects.create(user=alice, runtime_name="nginx", status=Deployment.Status.PENDING)
    new_image()
    assert services.slots_roll_image(runtime=runtime) == []


def test_assigned_slots_keep_their_image_until_released(
        warm: Callable, fake_engine: FakeEngine, new_image: Callable[[], None],
        alice: AbstractUser) -> None:
    warm("nginx", 3)
    runtime = pool(2, step=4)
    deployment = deployment_create(user=alice, runtime_name="nginx")
    new_image()
    services.pool_converge_locked(runtime_name=runtime.name)
    held = PoolContainer.objects.get(pk=deployment.slot_id)
    assert (held.status, held.image, images(fake_engine)[held.pk]) == (S.ASSIGNED, OLD, OLD)
    assert set(PoolContainer.objects.filter(status=S.IDLE).values_list("image", flat=True)) \
        == {NEW}
    deployment_release(deployment=deployment)  # the recycle builds the new image
    held.refresh_from_db()
    assert (held.status, held.image, images(fake_engine)[held.pk]) == (S.IDLE, NEW, NEW)


def test_slots_of_unknown_image_are_left_alone(warm: Callable,
                                               new_image: Callable[[], None]) -> None:
    warm("nginx", 2)
    runtime = pool(2, step=2)
    PoolContainer.objects.update(image="")  # built before the image was recorded
    new_image()
    assert services.slots_roll_image(runtime=runtime) == []


def test_pool_build_images_sets_the_roll_going(warm: Callable, new_image: Callable[[], None],
                                               fake_engine: FakeEngine) -> None:
    from io import StringIO

    from django.core.management import call_command

    from pools.imagebuild import image_tag

    warm("nginx", 2)
    pool(2, step=4)
    fake_engine.images.add(image_tag("nginx"))  # built already: nothing to build here
    new_image()  # the runtime's image now differs from the one its idle slots run
    call_command("pool", "build-images", "nginx", stdout=StringIO())
    assert set(PoolContainer.objects.values_list("image", flat=True)) == {NEW}
    assert set(images(fake_engine).values()) == {NEW}

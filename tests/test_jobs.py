"""Jobs, modules and services: `define_job`, `define_periodic_job`, `Module` and bootstrap."""

from __future__ import annotations

import dataclasses
import functools
import warnings
from collections.abc import Awaitable, Callable
from typing import Any, cast

import msgspec
import pytest

from glasswork import (
    Backoff,
    Job,
    JobContext,
    JobRegistry,
    JobService,
    MockQueueDriver,
    Module,
    RetryPolicy,
    TransientJobError,
    bootstrap_worker,
    define_job,
    define_periodic_job,
)
from glasswork.errors import ConfigurationError, ServiceError


def _noop(payload: object, ctx: JobContext) -> None:
    pass


class _ThrottledError(TransientJobError):
    """A transient error of the application's own."""


def job(name: str = "job", handler: Callable[[Any, JobContext], object] = _noop, **options: Any) -> Job[Any]:
    """A job (by default with a do-nothing handler)."""
    return define_job(name=name, handler=handler, **options)


def run_all(module: Module, *jobs_and_payloads: tuple[Job[Any], object]) -> MockQueueDriver:
    """Enqueue on a mock, drain it through a worker for `module`, return the mock."""
    mock = MockQueueDriver()
    service = JobService(mock)
    for target, payload in jobs_and_payloads:
        service.enqueue(target, payload)
    mock.drain(bootstrap_worker(module=module, driver=mock))
    return mock


# --- define_job ---------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["send_email", "billing.invoice:v2", "a/b-c", "X", "0", "x" * 200, "emails/send.v1"]
)
def test_valid_job_names(name: str) -> None:
    assert job(name).name == name


@pytest.mark.parametrize(
    "name",
    ["", "has space", "x" * 201, "naïve", "tab\there", "\nline", "semi;colon", "quote'"],
)
def test_invalid_job_name_is_a_configuration_error(name: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        job(name)

    assert repr(name) in str(caught.value)


def test_job_name_with_a_trailing_newline_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        job("send\n")


@pytest.mark.parametrize("name", [None, 42, b"bytes"])
def test_non_string_job_name_is_a_configuration_error(name: object) -> None:
    with pytest.raises(ConfigurationError):
        define_job(name=name, handler=_noop)  # type: ignore[arg-type]  # the runtime check under test


@pytest.mark.parametrize("handler", [None, "send_email", 42])
def test_non_callable_handler_is_a_configuration_error(handler: object) -> None:
    with pytest.raises(ConfigurationError) as caught:
        define_job(name="broken", handler=handler)  # type: ignore[arg-type]  # the runtime check under test

    assert "'broken'" in str(caught.value)
    assert "handler" in str(caught.value)


class Plain:
    """Not a type msgspec can convert JSON to (it would need a `dec_hook`)."""


class Left(msgspec.Struct, frozen=True):
    x: int


class Right(msgspec.Struct, frozen=True):
    y: int


@pytest.mark.parametrize("payload", [Left | Right, int | Plain], ids=["untagged-union", "custom"])
def test_unsupported_payload_type_is_a_configuration_error(payload: Any) -> None:
    with pytest.raises(ConfigurationError) as caught:
        define_job(name="odd", handler=_noop, payload=payload)

    assert "'odd'" in str(caught.value)
    assert isinstance(caught.value.__cause__, TypeError)


def test_plain_class_payload_type_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="Plain"):
        define_job(name="plain", handler=_noop, payload=Plain)


class Order(msgspec.Struct, frozen=True):
    order_id: int


@dataclasses.dataclass
class Point:
    x: int
    y: int


@pytest.mark.parametrize("payload", [Order, int, str, list[int], dict[str, int], Point])
def test_supported_payload_types_are_kept(payload: type[object]) -> None:
    assert job(payload=payload).payload_type is payload


def test_define_job_keeps_its_options() -> None:
    def unique(p: Order) -> str:
        return str(p.order_id)

    def group(p: Order) -> str:
        return "g"

    defined = define_job(name="orders", handler=_noop, payload=Order, queue="q", unique=unique, group=group)

    assert (defined.queue, defined.unique, defined.group) == ("q", unique, group)
    assert defined.handler is _noop
    assert defined.schedule is None
    assert repr(defined) == "Job(name='orders')"


@pytest.mark.parametrize(
    ("retry", "expected"),
    [
        (None, RetryPolicy(max_attempts=25, dead=True)),
        (True, RetryPolicy(max_attempts=25, dead=True)),
        (3, RetryPolicy(max_attempts=3, dead=True)),
        (1, RetryPolicy(max_attempts=1, dead=True)),
        (0, RetryPolicy(max_attempts=1, dead=False)),
        (-5, RetryPolicy(max_attempts=1, dead=False)),
        (False, RetryPolicy(max_attempts=1, dead=False)),
    ],
)
def test_retry_is_normalized(retry: int | bool | None, expected: RetryPolicy) -> None:
    policy = job(retry=retry).retry

    assert policy == expected
    assert policy.backoff == Backoff(base=2, factor=2, max=900)  # exponential, full jitter, by default


def test_backoff_none_keeps_the_queues_visibility_timeout() -> None:
    assert job(retry=RetryPolicy(backoff=None)).retry.backoff is None


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ((), ()),
        (ValueError, (ValueError,)),
        ((ValueError, KeyError), (ValueError, KeyError)),
        ([KeyError, ValueError, KeyError], (KeyError, ValueError)),
        ((Exception, BaseException), (Exception, BaseException)),
    ],
)
def test_permanent_errors_are_kept_as_a_tuple_of_classes(
    given: type[BaseException] | tuple[type[BaseException], ...], expected: tuple[type[BaseException], ...]
) -> None:
    assert job(permanent_errors=given).permanent_errors == expected
    periodic = define_periodic_job(
        name="tick", handler=_noop, schedule="rate(5 minutes)", permanent_errors=given
    )
    assert periodic.permanent_errors == expected


@pytest.mark.parametrize(
    ("given", "needle"),
    [
        ((ValueError, "KeyError"), "holds 'KeyError', which is not an exception class"),
        ((ValueError(),), "holds ValueError(), which is not an exception class"),
        ((int,), "holds <class 'int'>, which is not an exception class"),
        ("ValueError", "holds 'V', which is not an exception class"),
        (42, "must be an exception class or a tuple of them, got int"),
        ((TransientJobError,), "holds TransientJobError, a TransientJobError"),
        ((ValueError, _ThrottledError), "holds _ThrottledError, a TransientJobError"),
        ((KeyboardInterrupt,), "holds KeyboardInterrupt, which stops the process"),
        ((SystemExit,), "holds SystemExit, which stops the process"),
    ],
)
def test_permanent_errors_are_checked_at_definition(given: object, needle: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        job(name="charge", permanent_errors=given)
    assert str(caught.value).startswith("job 'charge': ")
    assert needle in str(caught.value)


def test_retry_policy_is_kept_as_given() -> None:
    policy = RetryPolicy(max_attempts=7, dead=False, backoff=Backoff(base=2, max=60))

    assert job(retry=policy).retry is policy


def test_retry_policy_needs_at_least_one_attempt() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)


@pytest.mark.parametrize("retry", [0, -1, False])
def test_no_retry_runs_once_and_discards(retry: int | bool) -> None:
    runs: list[int] = []

    def fail(payload: object, ctx: JobContext) -> None:
        runs.append(ctx.attempt_number)
        raise RuntimeError("nope")

    once = define_job(name="once", handler=fail, retry=retry)
    mock = run_all(Module(name="m", jobs=[once]), (once, None))

    assert runs == [1]
    assert mock.dead_letters == []
    assert mock.counts().pending == 0


async def _async_handler(payload: object, ctx: JobContext) -> None:
    pass


class _Methods:
    async def run(self, payload: object, ctx: JobContext) -> None:
        pass

    def run_sync(self, payload: object, ctx: JobContext) -> None:
        pass


def test_async_handlers_are_detected() -> None:
    methods = _Methods()

    assert job(handler=_async_handler).is_async
    assert job(handler=methods.run).is_async
    assert job(handler=functools.partial(_async_handler)).is_async


def test_sync_handlers_are_not_async() -> None:
    assert not job().is_async
    assert not job(handler=_Methods().run_sync).is_async
    assert not job(handler=lambda p, c: None).is_async


def test_async_handler_runs_to_completion() -> None:
    done: list[object] = []

    async def handler(payload: int, ctx: JobContext) -> None:
        done.append(payload)

    counted = define_job(name="counted", handler=handler, payload=int)
    run_all(Module(name="m", jobs=[counted]), (counted, 1), (counted, 2))

    assert sorted(cast("list[int]", done)) == [1, 2]


def test_handler_returning_an_awaitable_is_awaited() -> None:
    done: list[int] = []

    async def real(payload: int, ctx: JobContext) -> None:
        done.append(payload)

    def decorate(fn: Callable[[int, JobContext], Awaitable[None]]) -> Callable[[int, JobContext], object]:
        @functools.wraps(fn)
        def wrapper(payload: int, ctx: JobContext) -> object:
            return fn(payload, ctx)

        return wrapper

    wrapped = define_job(name="wrapped", handler=decorate(real), payload=int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "never awaited" while the bug stands
        run_all(Module(name="m", jobs=[wrapped]), (wrapped, 5))

    assert done == [5]


# --- define_periodic_job ------------------------------------------------------


@pytest.mark.parametrize(
    "schedule",
    [
        "rate(1 minute)",
        "rate(5 minutes)",
        "rate(1 hour)",
        "rate(12 hours)",
        "rate(1 day)",
        "rate(7 days)",
        "cron(0 3 * * ? *)",
        "cron(0/15 * ? * MON-FRI *)",
    ],
)
def test_valid_schedules(schedule: str) -> None:
    periodic = define_periodic_job(name="tick", handler=_noop, schedule=schedule)

    assert periodic.schedule == schedule
    assert periodic.payload_type is None
    assert periodic.name == "tick"


def test_schedule_is_stripped() -> None:
    periodic = define_periodic_job(name="tick", handler=_noop, schedule="  rate(5 minutes)\n")

    assert periodic.schedule == "rate(5 minutes)"


@pytest.mark.parametrize(
    "schedule",
    ["", "every 5 minutes", "rate(5 weeks)", "rate(five minutes)", "rate()", "cron()", "5 * * * *"],
)
def test_invalid_schedule_is_a_configuration_error(schedule: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        define_periodic_job(name="tick", handler=_noop, schedule=schedule)

    assert "'tick'" in str(caught.value)


@pytest.mark.parametrize(
    "schedule", ["rate(0 minutes)", "rate(1 minutes)", "rate(5 minute)", "cron(0 12 * * *)"]
)
def test_schedule_eventbridge_rejects_is_a_configuration_error(schedule: str) -> None:
    with pytest.raises(ConfigurationError):
        define_periodic_job(name="tick", handler=_noop, schedule=schedule)


def test_periodic_job_keeps_retry_and_queue() -> None:
    periodic = define_periodic_job(
        name="tick", handler=_noop, schedule="rate(1 day)", retry=False, queue="cron-q"
    )

    assert periodic.retry == RetryPolicy(max_attempts=1, dead=False)
    assert periodic.queue == "cron-q"


def test_periodic_job_runs_on_a_direct_invocation_with_none_payload() -> None:
    seen: list[object] = []
    periodic = define_periodic_job(
        name="tick", handler=lambda p, ctx: seen.append(p), schedule="rate(1 hour)"
    )
    handler = bootstrap_worker(module=Module(name="m", jobs=[periodic]), driver=MockQueueDriver())

    handler({"detail-type": "Scheduled Event", "detail": {"jobName": "tick"}}, None)

    assert seen == [None]


# --- modules ------------------------------------------------------------------


def test_duplicate_job_name_across_modules_names_both_modules() -> None:
    first = Module(name="billing", jobs=[job("charge")])
    second = Module(name="payments", jobs=[job("charge")])
    root = Module(name="app", imports=[first, second])

    with pytest.raises(ConfigurationError) as caught:
        bootstrap_worker(module=root, driver=MockQueueDriver())

    text = str(caught.value)
    assert "'charge'" in text
    assert "'billing'" in text
    assert "'payments'" in text


def test_duplicate_job_name_within_one_module_is_an_error() -> None:
    module = Module(name="billing", jobs=[job("charge"), job("charge")])

    with pytest.raises(ConfigurationError, match="'charge'"):
        bootstrap_worker(module=module, driver=MockQueueDriver())


def test_same_job_imported_twice_through_a_diamond_is_fine() -> None:
    runs: list[object] = []
    shared: Job[Any] = define_job(name="shared", handler=lambda p, ctx: runs.append(p))
    base = Module(name="base", jobs=[shared])
    left = Module(name="left", imports=[base])
    right = Module(name="right", imports=[base], jobs=[shared])
    root = Module(name="root", imports=[left, right])

    registry = JobRegistry.from_module(root)
    run_all(root, (shared, "once"))

    assert list(registry.jobs) == ["shared"]
    assert registry.get("shared") is shared
    assert runs == ["once"]


def test_walk_yields_each_module_once_imports_first() -> None:
    base = Module(name="base")
    left = Module(name="left", imports=[base])
    right = Module(name="right", imports=[base])
    root = Module(name="root", imports=[left, right])

    assert [m.name for m in root.walk()] == ["base", "left", "right", "root"]


def test_jobs_of_every_module_in_the_tree_are_found() -> None:
    leaf = Module(name="leaf", jobs=[job("a")])
    middle = Module(name="middle", jobs=[job("b")], imports=[leaf])
    root = Module(name="root", jobs=[job("c")], imports=[middle])

    registry = JobRegistry.from_module(root)

    assert sorted(registry.jobs) == ["a", "b", "c"]
    assert "a" in registry
    assert len(registry) == 3
    assert registry.get("missing") is None


def test_import_cycle_is_an_error_naming_the_cycle() -> None:
    imports_of_a: list[Module] = []
    a = Module(name="a", imports=imports_of_a)
    b = Module(name="b", imports=[a])
    imports_of_a.append(b)
    root = Module(name="root", imports=[a])

    with pytest.raises(ConfigurationError) as caught:
        bootstrap_worker(module=root, driver=MockQueueDriver())

    text = str(caught.value)
    assert "cycle" in text
    assert "a -> b -> a" in text
    assert "root" not in text


def test_self_import_is_a_cycle() -> None:
    imports: list[Module] = []
    selfish = Module(name="selfish", imports=imports)
    imports.append(selfish)

    with pytest.raises(ConfigurationError, match="selfish -> selfish"):
        JobRegistry.from_module(selfish)


def test_non_module_in_imports_is_an_error_naming_the_importer() -> None:
    root = Module(name="root", imports=["billing"])  # type: ignore[list-item]  # the runtime check under test

    with pytest.raises(ConfigurationError) as caught:
        bootstrap_worker(module=root, driver=MockQueueDriver())

    assert "root" in str(caught.value)
    assert "'billing'" in str(caught.value)


def test_non_job_in_jobs_is_an_error() -> None:
    root = Module(name="root", jobs=[_noop])  # type: ignore[list-item]  # the runtime check under test

    with pytest.raises(ConfigurationError, match="define_job"):
        bootstrap_worker(module=root, driver=MockQueueDriver())


def test_bootstrap_needs_a_module() -> None:
    with pytest.raises(ConfigurationError, match="Module"):
        bootstrap_worker(module="app", driver=MockQueueDriver())  # type: ignore[arg-type]  # the runtime check under test


# --- services -----------------------------------------------------------------


class Database:
    """A stand-in service."""


def capture_ctx() -> tuple[Job[Any], list[JobContext]]:
    """A job that records the context it ran with."""
    seen: list[JobContext] = []
    return define_job(name="capture", handler=lambda p, ctx: seen.append(ctx)), seen


def test_services_are_merged_across_the_tree() -> None:
    db = Database()
    capture, seen = capture_ctx()
    leaf = Module(name="leaf", services={"db": lambda: db})
    root = Module(name="root", jobs=[capture], imports=[leaf], services={"mailer": lambda: "smtp"})

    run_all(root, (capture, None))

    [ctx] = seen
    assert ctx.services.db is db
    assert ctx.services.mailer == "smtp"
    assert "db" in ctx.services
    assert "cache" not in ctx.services


def test_conflicting_service_names_are_an_error() -> None:
    first = Module(name="first", services={"db": Database})
    second = Module(name="second", services={"db": lambda: Database()})  # noqa: PLW0108  # a distinct factory on purpose
    root = Module(name="root", imports=[first, second])

    with pytest.raises(ConfigurationError) as caught:
        bootstrap_worker(module=root, driver=MockQueueDriver())

    assert "'db'" in str(caught.value)
    assert "'first'" in str(caught.value)
    assert "'second'" in str(caught.value)


def test_same_factory_reached_twice_is_fine() -> None:
    calls: list[int] = []

    def factory() -> int:
        calls.append(1)
        return len(calls)

    base = Module(name="base", services={"n": factory})
    root = Module(name="root", imports=[Module(name="l", imports=[base]), base])

    bootstrap_worker(module=root, driver=MockQueueDriver())

    assert calls == [1]


def test_non_callable_service_is_an_error() -> None:
    root = Module(name="root", services={"db": "postgres://"})  # type: ignore[dict-item]  # the runtime check under test

    with pytest.raises(ConfigurationError, match="'db'"):
        bootstrap_worker(module=root, driver=MockQueueDriver())


def test_each_factory_is_called_exactly_once_at_bootstrap() -> None:
    calls: dict[str, int] = {"db": 0, "mailer": 0}

    def make(name: str) -> Callable[[], str]:
        def factory() -> str:
            calls[name] += 1
            return f"{name}-{calls[name]}"

        return factory

    capture, seen = capture_ctx()
    root = Module(
        name="root",
        jobs=[capture],
        imports=[Module(name="mail", services={"mailer": make("mailer")})],
        services={"db": make("db")},
    )
    mock = MockQueueDriver()
    service = JobService(mock)

    handler = bootstrap_worker(module=root, driver=mock)
    assert calls == {"db": 1, "mailer": 1}

    for n in range(5):
        service.enqueue(capture, n)
    mock.drain(handler, batch_size=2)

    assert calls == {"db": 1, "mailer": 1}
    assert len(seen) == 5
    assert {ctx.services.db for ctx in seen} == {"db-1"}
    assert {ctx.services.mailer for ctx in seen} == {"mailer-1"}


def test_services_get_returns_a_checked_value() -> None:
    db = Database()
    capture, seen = capture_ctx()
    run_all(Module(name="root", jobs=[capture], services={"db": lambda: db}), (capture, None))

    services = seen[0].services
    assert services.get("db", Database) is db
    with pytest.raises(ConfigurationError, match="expected int"):
        services.get("db", int)
    with pytest.raises(ConfigurationError, match="missing"):
        services.get("cache", Database)


def test_raising_factory_is_a_service_error_at_bootstrap() -> None:
    boom = ConnectionRefusedError("db down")
    calls: list[int] = []

    def connect() -> Database:
        calls.append(1)
        raise boom

    root = Module(name="root", jobs=[job("j")], services={"db": connect})

    with pytest.raises(ServiceError) as caught:
        bootstrap_worker(module=root, driver=MockQueueDriver())

    assert isinstance(caught.value, ConfigurationError)
    assert "'db'" in str(caught.value)
    assert caught.value.__cause__ is boom
    assert calls == [1]


def test_unknown_service_attribute_names_the_known_ones() -> None:
    capture, seen = capture_ctx()
    root = Module(name="root", jobs=[capture], services={"db": Database, "mailer": lambda: "smtp"})
    run_all(root, (capture, None))

    with pytest.raises(AttributeError) as caught:
        _ = seen[0].services.cache

    text = str(caught.value)
    assert "'cache'" in text
    assert "db" in text
    assert "mailer" in text


def test_unknown_service_without_any_services() -> None:
    capture, seen = capture_ctx()
    run_all(Module(name="root", jobs=[capture]), (capture, None))

    with pytest.raises(AttributeError, match="none"):
        _ = seen[0].services.db


def test_services_are_read_only() -> None:
    capture, seen = capture_ctx()
    run_all(Module(name="root", jobs=[capture], services={"db": Database}), (capture, None))

    with pytest.raises(AttributeError, match="read-only"):
        seen[0].services.db = Database()


@pytest.mark.parametrize("retry", ["often", 2.5, [3]])
def test_a_retry_of_the_wrong_type_is_a_configuration_error_naming_the_job(retry: object) -> None:
    with pytest.raises(ConfigurationError, match=r"job 'sync': retry must be None, a bool, an int") as caught:
        define_job(name="sync", handler=lambda p, c: None, retry=retry)  # type: ignore[arg-type]
    assert isinstance(caught.value.__cause__, TypeError)

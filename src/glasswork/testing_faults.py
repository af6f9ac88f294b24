"""Fault injection for drivers: `FaultyDriver` wraps any driver and fails chosen calls.

For your own fault tests: check that a job, a hook or a worker set-up keeps its
promises when the queue misbehaves (a DLQ that is down, a lost response, a
throttled send). It needs nothing beyond glasswork itself.

```python
from glasswork import bootstrap_worker
from glasswork.drivers.sqlite import SQLiteQueueDriver
from glasswork.errors import DriverError
from glasswork.testing_faults import FaultyDriver

queue = SQLiteQueueDriver(path)
faulty = FaultyDriver(queue)
faulty.fail("dead_letter", DriverError("DLQ down"), times=None)   # every DLQ send fails ...
worker = bootstrap_worker(module=app, driver=faulty)
...
faulty.heal("dead_letter")                                       # ... until the DLQ is back
```

A rule names a driver method and says which of its calls fail:

- `nth=3`: calls before the third call of that method pass; the rule starts there.
- `when=predicate`: only calls for which `predicate(call)` is true (a `Call`
  carries the method name, its 1-based number and the arguments).
- `times=n`: the first `n` matching calls fail (`None`: every one, until `heal`).
- `after=True`: the call reaches the driver and takes effect, then the caller
  sees the error anyway (a lost response: the ambiguous failure that makes
  at-least-once systems deliver twice).

The error is an exception instance or a function of the `Call` returning one.
Every call is recorded (`calls(method)`), and so is every injected failure
(`injected`). The wrapper keeps the wrapped driver's shape: it forwards
exactly the public methods and attributes the driver has, so
`isinstance(faulty, BatchQueueDriver)` (and the other runtime-checkable
protocols) answers as it would for the driver itself. Calls the driver makes
on itself (`MockQueueDriver.enqueue_batch` calling `enqueue`) are not seen.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeAlias, TypeVar

import msgspec

__all__ = ["Call", "ErrorSpec", "FaultyDriver", "Injected", "Rule"]

D = TypeVar("D")


class Call(msgspec.Struct, frozen=True, kw_only=True):
    """One call of a wrapped driver's method.

    Attributes:
        method: The method's name.
        number: 1 for the method's first call through the wrapper, then 2, ...
        args: The positional arguments.
        kwargs: The keyword arguments.
    """

    method: str
    number: int
    args: tuple[object, ...]
    kwargs: dict[str, object]


ErrorSpec: TypeAlias = BaseException | Callable[[Call], BaseException]
"""An exception to raise, or a function making one for a call."""


class Injected(msgspec.Struct, frozen=True, kw_only=True):
    """A failure `FaultyDriver` injected: the call, the error, and whether the call took effect.

    Attributes:
        call: The call that failed.
        error: The exception raised to the caller.
        took_effect: The call reached the wrapped driver before the error was
            raised (a rule with `after=True`).
    """

    call: Call
    error: BaseException
    took_effect: bool


class Rule:
    """One fault rule of a `FaultyDriver`; made by `FaultyDriver.fail`.

    Attributes:
        method: The method it fails.
        fired: How many calls it has failed so far.
    """

    __slots__ = ("_error", "after", "fired", "method", "nth", "times", "when")

    def __init__(
        self,
        method: str,
        error: ErrorSpec,
        *,
        nth: int,
        when: Callable[[Call], bool] | None,
        times: int | None,
        after: bool,
    ) -> None:
        self.method = method
        self._error = error
        self.nth = nth
        self.when = when
        self.times = times
        self.after = after
        self.fired = 0

    def __repr__(self) -> str:
        return (
            f"Rule({self.method!r}, nth={self.nth}, times={self.times}, after={self.after}, "
            f"fired={self.fired})"
        )

    @property
    def spent(self) -> bool:
        """Whether the rule has failed all the calls it was asked to."""
        return self.times is not None and self.fired >= self.times

    def matches(self, call: Call) -> bool:
        """Whether this rule fails `call` (it does not count the call as fired)."""
        if call.method != self.method or self.spent or call.number < self.nth:
            return False
        return self.when is None or self.when(call)

    def error_for(self, call: Call) -> BaseException:
        """The exception to raise for `call`."""
        error = self._error
        return error if isinstance(error, BaseException) else error(call)


_OWN = frozenset({"calls", "count", "fail", "heal", "inner", "injected", "rules"})
_classes: dict[type, type] = {}
_classes_lock = threading.Lock()


class FaultyDriver(Generic[D]):
    """Wrap a driver so that chosen calls raise.

    `FaultyDriver(driver)` returns an instance of a subclass made for the
    driver's type, carrying one forwarding method per public method of the
    driver (and a forwarding property per public attribute of its class), so
    runtime protocol checks see what the driver has. Instance attributes
    (`MockQueueDriver.jobs`, ...) are forwarded on access.

    Args:
        inner: The driver to wrap; it is used, not copied.

    Attributes:
        inner: The wrapped driver.
        injected: Every failure injected so far, in order.
        rules: The active rules, in the order they were added.
    """

    inner: D

    def __new__(cls, inner: D) -> FaultyDriver[D]:
        kind = type(inner)
        with _classes_lock:
            proxy = _classes.get(kind)
            if proxy is None:
                proxy = _classes[kind] = _proxy_class(cls, kind)
        instance: FaultyDriver[D] = object.__new__(proxy)
        return instance

    def __init__(self, inner: D) -> None:
        self.inner = inner
        self.injected: list[Injected] = []
        self.rules: list[Rule] = []
        self._calls: dict[str, list[Call]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"FaultyDriver({self.inner!r}, rules={self.rules!r})"

    # Forwarding for whatever the wrapped driver has: typed Any on purpose,
    # so a FaultyDriver[D] is accepted wherever the driver's protocols are.
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    # --- programming faults -----------------------------------------------------

    def fail(
        self,
        method: str,
        error: ErrorSpec,
        *,
        nth: int = 1,
        when: Callable[[Call], bool] | None = None,
        times: int | None = 1,
        after: bool = False,
    ) -> Rule:
        """Make calls of `method` raise `error`.

        Args:
            method: A public method of the wrapped driver, such as `"dead_letter"`.
            error: The exception to raise, or a function of the `Call` making one.
            nth: The first call (1-based, counted over the wrapper's life) the
                rule may fail; earlier calls pass.
            when: Fail only calls for which this returns true.
            times: How many matching calls fail; `None` for every one until `heal`.
            after: Let the call reach the driver first, then raise (the effect stays).

        Returns:
            The rule (its `fired` counts the failures so far).

        Raises:
            AttributeError: The driver has no such public method.
            ValueError: `nth` below 1 or `times` below 1.
        """
        if method.startswith("_") or not callable(getattr(self.inner, method, None)):
            msg = f"{type(self.inner).__name__} has no public method {method!r}"
            raise AttributeError(msg)
        if nth < 1 or (times is not None and times < 1):
            msg = f"nth and times must be >= 1, got nth={nth}, times={times}"
            raise ValueError(msg)
        rule = Rule(method, error, nth=nth, when=when, times=times, after=after)
        with self._lock:
            self.rules.append(rule)
        return rule

    def heal(self, method: str | None = None) -> None:
        """Drop the rules of `method` (every rule when `None`); later calls pass."""
        with self._lock:
            self.rules[:] = [r for r in self.rules if method is not None and r.method != method]

    def calls(self, method: str) -> list[Call]:
        """Every call of `method` through the wrapper so far, failed ones included."""
        with self._lock:
            return list(self._calls.get(method, []))

    def count(self, method: str) -> int:
        """How many times `method` was called through the wrapper."""
        with self._lock:
            return len(self._calls.get(method, []))

    # --- the call path ------------------------------------------------------------

    def _invoke(self, method: str, args: tuple[object, ...], kwargs: dict[str, object]) -> object:
        with self._lock:
            seen = self._calls.setdefault(method, [])
            call = Call(method=method, number=len(seen) + 1, args=args, kwargs=kwargs)
            seen.append(call)
            rule = next((r for r in self.rules if r.matches(call)), None)
            if rule is not None:
                rule.fired += 1
        if rule is not None and not rule.after:
            self._raise(rule, call, took_effect=False)
        result = getattr(self.inner, method)(*args, **kwargs)
        if rule is not None:
            self._raise(rule, call, took_effect=True)
        return result

    def _raise(self, rule: Rule, call: Call, *, took_effect: bool) -> None:
        error = rule.error_for(call)
        with self._lock:
            self.injected.append(Injected(call=call, error=error, took_effect=took_effect))
        raise error


def _forward_method(name: str) -> Callable[..., object]:
    def method(self: FaultyDriver[object], *args: object, **kwargs: object) -> object:
        return self._invoke(name, args, kwargs)

    method.__name__ = name
    return method


def _forward_attribute(name: str) -> property:
    def get(self: FaultyDriver[object]) -> object:
        return getattr(self.inner, name)

    return property(get)


def _proxy_class(base: type, kind: type) -> type:
    namespace: dict[str, object] = {"__module__": __name__}
    for name in dir(kind):
        if name.startswith("_") or name in _OWN:
            continue
        static = inspect.getattr_static(kind, name)
        if isinstance(static, staticmethod | classmethod):
            continue
        if inspect.isfunction(static):
            namespace[name] = _forward_method(name)
        else:
            namespace[name] = _forward_attribute(name)
    return type(f"Faulty{kind.__name__}", (base,), namespace)

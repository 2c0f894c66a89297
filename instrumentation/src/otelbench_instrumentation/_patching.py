"""One table drives both wrapping and unwrapping, so the two can never drift apart."""

from __future__ import annotations

import importlib.util
import logging
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import wrapt
from opentelemetry.instrumentation.utils import unwrap

log = logging.getLogger(__name__)

Wrapper = Callable[[Callable[..., Any], Any, tuple[Any, ...], dict[str, Any]], Any]


@dataclass(frozen=True, slots=True)
class Patch:
    """Wrap ``module.attribute`` (``"Class.method"``) with the wrapper the factory returns."""

    module: str
    attribute: str
    factory: Callable[[], Wrapper]


def _resolve(patch: Patch) -> tuple[Any, str] | None:
    """Return (owner, name) if the patch target exists; never imports anything itself."""
    owner: Any = sys.modules.get(patch.module)
    if owner is None:
        return None
    *path, name = patch.attribute.split(".")
    for part in path:
        owner = getattr(owner, part, None)
        if owner is None:
            return None
    if not callable(getattr(owner, name, None)):
        return None
    return owner, name


def _wrap_all(patches: Iterable[Patch]) -> None:
    """Wrap each target, importing its (sub)module: only called once the SDK is imported."""
    for patch in patches:
        try:
            importlib.import_module(patch.module)
        except ImportError:
            log.debug("skipping %s: not in this SDK version", patch.module)
            continue
        if _resolve(patch) is None:
            log.debug("skipping %s.%s: not in this SDK version", patch.module, patch.attribute)
            continue
        try:
            wrapt.wrap_function_wrapper(patch.module, patch.attribute, patch.factory())
        except Exception:
            log.debug("could not wrap %s.%s", patch.module, patch.attribute, exc_info=True)


class _Pending:
    """Patches waiting for their package's first import; ``active`` is cleared on revert."""

    __slots__ = ("active", "patches")

    def __init__(self, patches: list[Patch]) -> None:
        self.patches = patches
        self.active = True

    def __call__(self, module: object) -> None:
        if self.active:
            self.active = False
            _wrap_all(self.patches)


# wrapt cannot unregister a post-import hook, so revert deactivates it instead.
_PENDING: dict[Patch, _Pending] = {}


def apply(patches: Iterable[Patch]) -> list[Patch]:
    """Wrap every target now if its SDK is imported, else when the app first imports it.

    Deferring keeps `opentelemetry-instrument` from importing SDKs an app never uses (importing
    some costs seconds). The hook waits for the top-level package, so the SDK has finished its
    own import (e.g. bound its module-level functions) before anything is wrapped, exactly as
    when instrumenting after the import. Returns the patches to hand to :func:`revert`.
    """
    by_package: dict[str, list[Patch]] = {}
    for patch in patches:
        by_package.setdefault(patch.module.partition(".")[0], []).append(patch)
    taken: list[Patch] = []
    for package, group in by_package.items():
        if package in sys.modules:
            _wrap_all(group)
        elif importlib.util.find_spec(package) is not None:
            pending = _Pending(group)
            for patch in group:
                _PENDING[patch] = pending
            wrapt.register_post_import_hook(pending, package)
        else:
            continue  # the library is not installed
        taken.extend(group)
    return taken


def revert(patches: Iterable[Patch]) -> None:
    """Undo patches applied by :func:`apply` (and cancel those still waiting for an import)."""
    for patch in patches:
        pending = _PENDING.pop(patch, None)
        if pending is not None:
            pending.active = False
        target = _resolve(patch)
        if target is None:
            continue
        owner, name = target
        try:
            unwrap(owner, name)
        except Exception:
            log.debug("could not unwrap %s.%s", patch.module, patch.attribute, exc_info=True)

"""One table drives both wrapping and unwrapping, so the two can never drift apart."""

from __future__ import annotations

import importlib
import logging
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
    """Return (owner, name) if the patch target exists in the installed SDK version."""
    try:
        owner: Any = importlib.import_module(patch.module)
    except ImportError:
        return None
    *path, name = patch.attribute.split(".")
    for part in path:
        owner = getattr(owner, part, None)
        if owner is None:
            return None
    if not callable(getattr(owner, name, None)):
        return None
    return owner, name


def apply(patches: Iterable[Patch]) -> list[Patch]:
    """Apply every patch whose target exists; return the ones applied."""
    applied = []
    for patch in patches:
        if _resolve(patch) is None:
            log.debug("skipping %s.%s: not in this SDK version", patch.module, patch.attribute)
            continue
        wrapt.wrap_function_wrapper(patch.module, patch.attribute, patch.factory())
        applied.append(patch)
    return applied


def revert(patches: Iterable[Patch]) -> None:
    """Undo patches applied by :func:`apply`."""
    for patch in patches:
        target = _resolve(patch)
        if target is None:
            continue
        owner, name = target
        try:
            unwrap(owner, name)
        except Exception:
            log.debug("could not unwrap %s.%s", patch.module, patch.attribute, exc_info=True)

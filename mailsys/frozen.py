"""frozen - a frozen, slotted dataclass whose instances are quick to build.

SYNOPSIS
    from mailsys.frozen import frozen

    @frozen
    class Reply:
        code: int
        text: str = ""

DESCRIPTION
    frozen(cls) is dataclasses.dataclass(frozen=True, slots=True)(cls)
    with another __init__. A frozen dataclass's own __init__ must get past
    the __setattr__ that makes it frozen, so it sets every field through
    object.__setattr__(self, "name", value): a generic attribute lookup by
    name per field. Every message between mailsys's processes, every queue
    record, reply and SMTP event is such an object, and building them was
    4 to 9 per cent of each service's CPU. The __init__ made here stores
    each field through its slot's own descriptor, which is what that lookup
    ends at: a CleanupRequest (41 fields) is built in 40 % of the time.

    Everything else is the dataclass's, and the new __init__ takes the same
    arguments and does the same thing: fields in order, positional or by
    keyword; plain defaults and default_factory; fields with init=False
    set from their default; __post_init__ called last. A class this does
    not handle (an InitVar, a keyword-only field, a field that is not a
    slot of the class or its bases) keeps the dataclass's __init__, and a
    class that defines its own __init__ keeps that.

    Subclasses of a frozen class are decorated again, as with dataclass.
    It is declared a dataclass transform (typing.dataclass_transform), so
    that mypy, and mypyc compiling the modules setup.py names, read a
    decorated class as the frozen dataclass it is.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
from typing import Any, TypeVar, dataclass_transform

__all__ = ["frozen"]

T = TypeVar("T")

_FACTORY = object()     # "no argument": call the field's default_factory


@dataclass_transform(frozen_default=True)
def frozen(cls: type[T]) -> type[T]:
    """frozen - dataclass(frozen=True, slots=True), built quicker."""
    own_init = "__init__" in cls.__dict__      # the dataclass keeps it, and so does this
    cls = dataclasses.dataclass(frozen=True, slots=True)(cls)
    init = None if own_init else _fast_init(cls)
    if init is not None:
        cls.__init__ = init            # type: ignore[misc]
    return cls


def _fast_init(cls: type) -> Any:
    """The __init__ for cls, or None where the dataclass's must stay."""
    fields = dataclasses.fields(cls)
    # The dataclass's own __init__ says what it takes: an InitVar is a
    # parameter but not a field, a keyword-only field another kind of one.
    takes = list(inspect.signature(cls.__init__).parameters.values())[1:]
    if [p.name for p in takes] != [f.name for f in fields if f.init] or any(
            p.kind is not inspect.Parameter.POSITIONAL_OR_KEYWORD for p in takes):
        return None
    scope: dict[str, Any] = {"_FACTORY": _FACTORY}
    params: list[str] = []
    body: list[str] = []
    for i, f in enumerate(fields):
        setter = _slot_setter(cls, f.name)
        if setter is None:
            return None
        scope[f"_set{i}"] = setter
        has_factory = f.default_factory is not dataclasses.MISSING
        if has_factory:
            scope[f"_factory{i}"] = f.default_factory
        if f.init:
            if f.default is not dataclasses.MISSING:
                scope[f"_default{i}"] = f.default
                params.append(f"{f.name}=_default{i}")
            elif has_factory:
                params.append(f"{f.name}=_FACTORY")
            else:
                params.append(f.name)
            value = f"_factory{i}() if {f.name} is _FACTORY else {f.name}" if has_factory \
                else f.name
        elif f.default is not dataclasses.MISSING:
            scope[f"_default{i}"] = f.default
            value = f"_default{i}"
        elif has_factory:
            value = f"_factory{i}()"
        else:
            continue                     # never set, as with the dataclass
        body.append(f"    _set{i}(self, {value})")
    if hasattr(cls, "__post_init__"):
        body.append("    self.__post_init__()")
    # A parameter named "self" or like a helper would shadow it: leave such
    # a class as it is.
    if any(p.split("=")[0] == "self" or p.split("=")[0] in scope for p in params):
        return None
    source = f"def __init__(self, {', '.join(params)}):\n" + ("\n".join(body) or "    pass") + "\n"
    exec(source, scope)     # noqa: S102 - generated from field names, as dataclasses does
    init = scope["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__doc__ = cls.__init__.__doc__
    return init


def _slot_setter(cls: type, name: str) -> Any:
    """The __set__ of the slot descriptor that holds name, or None."""
    for klass in cls.__mro__:
        descriptor = klass.__dict__.get(name)
        if descriptor is not None:
            return descriptor.__set__ if type(descriptor) is types.MemberDescriptorType \
                else None
    return None

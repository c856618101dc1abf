"""frozen: the same class as dataclass(frozen=True, slots=True), with its own __init__."""

import dataclasses
from dataclasses import dataclass, field

import pytest

from mailsys.frozen import frozen


def both(body):
    """The class body built twice: as a plain frozen slotted dataclass, and by frozen."""
    return dataclass(frozen=True, slots=True)(body()), frozen(body())


def fields_of(obj):
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}


def sample():
    class Sample:
        code: int
        text: str = "Ok"
        tags: tuple[str, ...] = ()
        notes: list = field(default_factory=list)
        seen: int = field(default=7, init=False)
        made: tuple = field(default_factory=lambda: ("made",), init=False)
    return Sample


@pytest.mark.parametrize("args, kwargs", [
    ((250,), {}),
    ((250, "Fine"), {}),
    ((), {"code": 451, "tags": ("a",)}),
    ((550,), {"notes": [1, 2], "text": "No"}),
])
def test_same_fields_as_the_dataclass(args, kwargs):
    plain, fast = both(sample)
    assert fast.__init__ is not plain.__init__
    assert fields_of(fast(*args, **kwargs)) == fields_of(plain(*args, **kwargs))
    assert fast(*args, **kwargs).seen == 7
    assert fast(*args, **kwargs).made == ("made",)


def test_a_default_factory_runs_for_each_instance():
    _, fast = both(sample)
    one, two = fast(1), fast(1)
    assert one.notes == [] and one.notes is not two.notes


def test_still_frozen_hashable_comparable_and_replaceable():
    _, fast = both(sample)
    reply = fast(250, tags=("x",), notes=None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        reply.code = 1
    assert reply == fast(250, tags=("x",), notes=None)
    assert hash(fast(250, notes=None)) == hash(fast(250, notes=None))
    assert dataclasses.replace(reply, code=251) == fast(251, tags=("x",), notes=None)
    assert not hasattr(reply, "__dict__")


@pytest.mark.parametrize("args, kwargs", [((), {}), ((1, "a", (), [], 5), {}), ((1,), {"code": 2}),
                                          ((1,), {"bogus": 2}), ((1,), {"seen": 3})])
def test_bad_arguments_fail_as_with_the_dataclass(args, kwargs):
    plain, fast = both(sample)
    with pytest.raises(TypeError) as expected:
        plain(*args, **kwargs)
    with pytest.raises(TypeError) as got:
        fast(*args, **kwargs)
    assert str(got.value) == str(expected.value)


def test_post_init_runs_last():
    def body():
        class Checked:
            low: int
            high: int = 10

            def __post_init__(self):
                if self.low > self.high:
                    raise ValueError(f"{self.low} > {self.high}")
                object.__setattr__(self, "high", self.high * 2)
        return Checked
    _, fast = both(body)
    assert fast(1).high == 20
    with pytest.raises(ValueError, match="11 > 10"):
        fast(11)


def test_a_subclass_sets_its_base_fields_too():
    @frozen
    class Base:
        a: int
        b: str = "b"

    @frozen
    class Child(Base):
        c: float = 1.5

    child = Child(1, c=2.5)
    assert (child.a, child.b, child.c) == (1, "b", 2.5)
    assert isinstance(child, Base) and Child.__init__ is not Base.__init__


def test_an_init_var_keeps_the_dataclass_init():
    @frozen
    class Scaled:
        value: int
        factor: "dataclasses.InitVar[int]" = 1     # as under postponed annotations

        def __post_init__(self, factor):
            object.__setattr__(self, "value", self.value * factor)

    assert Scaled(2, 3).value == 6 and Scaled(2).value == 2


def test_its_own_init_and_keyword_only_fields_keep_what_they_had():
    @frozen
    class Own:
        a: int

        def __init__(self, text):
            object.__setattr__(self, "a", int(text))

    @frozen
    class KwOnly:
        a: int
        b: int = field(default=2, kw_only=True)

    assert Own("7").a == 7
    assert KwOnly(1, b=3).b == 3
    with pytest.raises(TypeError):
        KwOnly(1, 3)


def test_every_frozen_class_of_mailsys_is_built_the_quick_way():
    from mailsys.ipc.proto.cleanup import CleanupRequest
    from mailsys.smtp.replies import Reply
    for cls in (CleanupRequest, Reply):
        assert "_set0" in cls.__init__.__code__.co_names
    assert Reply(250, "2.0.0", "Ok") == dataclasses.replace(Reply(250, "2.0.0", "Ok"))

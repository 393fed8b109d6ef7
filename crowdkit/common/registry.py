"""Name → backend registries.

Detectors, embedders, classifiers and backbones are chosen by name::

    DETECTORS = Registry("detector")

    @DETECTORS.register("mtcnn")
    class MTCNNDetector(Detector): ...

    DETECTORS.create("mtcnn", min_face_size=16)

An unknown name fails with a message that lists the known ones.
"""
from __future__ import annotations

from typing import Any, Callable, Generic, TypeVar

from crowdkit.common.exceptions import UnknownBackendError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, type[T]] = {}

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        def decorator(cls: type[T]) -> type[T]:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = cls
            return cls

        return decorator

    def names(self) -> list[str]:
        return sorted(self._entries)

    def get(self, name: str) -> type[T]:
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(self.names()) or "(none)"
            raise UnknownBackendError(
                f"unknown {self.kind} {name!r}; known {self.kind}s: {known}"
            ) from None

    def create(self, name: str, **options: Any) -> T:
        return self.get(name)(**options)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

"""A bounded map from processed frame index to what the node still needs for that frame."""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

T = TypeVar("T")


class RollingWindow(Generic[T]):
    """Holds items keyed by increasing frame index; the oldest leave when ``capacity`` is reached.

    Memory is bounded by ``capacity`` items whatever the stream length.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"window capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._items: OrderedDict[int, T] = OrderedDict()

    def add(self, index: int, item: T) -> None:
        """Store ``item`` for ``index``; indices must increase (frames arrive in order)."""
        if self._items and index <= next(reversed(self._items)):
            raise ValueError(f"frame {index} arrived after frame {next(reversed(self._items))}")
        self._items[index] = item
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def __getitem__(self, index: int) -> T:
        try:
            return self._items[index]
        except KeyError:
            raise KeyError(f"frame {index} is not in the window (holds {self.oldest}..{self.newest})") from None

    def __contains__(self, index: int) -> bool:
        return index in self._items

    def __len__(self) -> int:
        return len(self._items)

    def pop(self, index: int) -> T:
        return self._items.pop(index)

    @property
    def oldest(self) -> int | None:
        return next(iter(self._items)) if self._items else None

    @property
    def newest(self) -> int | None:
        return next(reversed(self._items)) if self._items else None

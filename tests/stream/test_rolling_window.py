"""stream.stages.rolling_window: the latents a live node keeps, bounded and in arrival order."""

from __future__ import annotations

import pytest

from pipeline.snippets import SnippetPlan
from stream.stages.rolling_window import RollingWindow


def test_rolling_window_is_bounded_and_ordered():
    assert SnippetPlan(3, (1, 25)).history(lookahead=2) == 53
    window = RollingWindow(3)
    for i in range(10):
        window.add(i, i * 10)
    assert len(window) == 3 and window.oldest == 7 and window[9] == 90
    with pytest.raises(KeyError, match="not in the window"):
        window[2]
    with pytest.raises(ValueError, match="arrived after"):
        window.add(5, 0)

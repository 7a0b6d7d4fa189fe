"""Co-alignment: turn snippets, each known only up to its own scale and shift, into one video.

The one entry module. Offline, ``align_snippets`` aligns every snippet of a clip at once (solvers
``exact`` and ``adam``) and ``merge_snippets`` averages them; live, ``OnlineAligner`` aligns each
new snippet against a rolling window. The method is described in docs/method.md, section 5
(offline) and section 8 (online).

Modules, from the top down:
- ``align``: ``align_snippets``, ``objective``, ``merge_snippets``, ``AlignResult`` (offline entry).
- ``exact``: the direct IRLS solver; ``adam``: the reference optimiser.
- ``objective``: the reference objective on fit samples; ``quality``: quality-mode settings.
- ``snippet_set``: validated snippet sets and their sparse fit samples.
- ``online``: ``OnlineAligner``; ``open_snippets``: its joint refinement of the open snippets;
  ``robust_fit``: the robust scale/shift fit that warm-starts a new snippet.
"""

from pipeline.coalign.align import METHODS, AlignResult, align_snippets, merge_snippets, objective
from pipeline.coalign.online import OnlineAligner
from pipeline.coalign.quality import QUALITIES
from pipeline.normalize import normalize_to_unit_range

__all__ = ["METHODS", "QUALITIES", "AlignResult", "OnlineAligner", "align_snippets", "merge_snippets",
           "normalize_to_unit_range", "objective"]

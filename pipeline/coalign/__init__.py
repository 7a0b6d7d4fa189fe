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
  ``robust_fit``: the robust scale/shift fit that warm-starts a new snippet; ``fit_grid``: the
  pixels it fits on and how they are sampled; ``snippet_depth``: what the node hands it per
  snippet (``SnippetDepth``) and which frames must come at full resolution (``still_merged``).
"""


import importlib

# Exported names -> the module that defines them, loaded on first use (PEP 562): the quality
# names that a command line checks (``pipeline.coalign.quality``) then come without torch.
_EXPORTS = {
    "METHODS": "pipeline.coalign.align", "AlignResult": "pipeline.coalign.align",
    "align_snippets": "pipeline.coalign.align", "merge_snippets": "pipeline.coalign.align",
    "objective": "pipeline.coalign.align", "OnlineAligner": "pipeline.coalign.online",
    "QUALITIES": "pipeline.coalign.quality", "normalize_to_unit_range": "pipeline.normalize",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(_EXPORTS[name])
    # Bind every export of that module here, after its import: loading align also loads the
    # submodule ``objective``, which the import system binds to this package's name ``objective``;
    # the function must win, as it did when these imports were eager.
    for export, where in _EXPORTS.items():
        if where == _EXPORTS[name]:
            globals()[export] = getattr(module, export)
    return globals()[name]

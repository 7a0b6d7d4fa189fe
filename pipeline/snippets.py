"""Snippet geometry, the one home for it: which frames form each snippet, offline and live.

Offline (docs/method.md, section 4): ``plan_snippets`` gives every snippet of a clip, with the
reference's dilation cap on short clips. Live (section 8): ``SnippetPlan`` gives the snippets that end
at each new frame and how many frames of history a node must keep for them.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.errors import BadInputError


@dataclass(frozen=True)
class SnippetLevel:
    """Snippets of one dilation level.

    requested: the dilation asked for (it names the level, e.g. ``dilation25`` in snippets.npz).
    dilation: the dilation used after capping. starts: first frame of each snippet.
    frames: per snippet, the L frame indices (start, start + d, ..., start + (L-1) d).
    """

    requested: int
    dilation: int
    frames: tuple[tuple[int, ...], ...]


def cap_dilation(dilation: int, num_frames: int, snip_len: int) -> int:
    """A dilation larger than m = int(N / L) - 1 becomes m (the reference's cap_dilation).

    For clips shorter than 2 L frames m would be 0; we cap at 1 there (the reference would fail).
    """
    limit = max(1, int(num_frames / snip_len) - 1)
    return min(dilation, limit)


def check_snippet_options(snip_len: int, dilations) -> None:
    """Snippet length 2..4 and positive dilations that include 1 (offline and live alike)."""
    if not 2 <= snip_len <= 4:
        raise BadInputError(f"--snip-len {snip_len}: must be 2, 3 or 4")
    dilations = list(dilations)
    if not dilations or 1 not in dilations or any(d < 1 for d in dilations):
        listed = ",".join(map(str, dilations)) or "(none)"
        raise BadInputError(f"--dilations {listed}: must be positive whole numbers that include 1")


def check_strides(snip_len: int, dilations, strides) -> None:
    """Snippet strides (one per dilation, in the same order): whole numbers >= 1; dilation 1's at most
    ``L - 1`` so that its snippets still cover every frame and overlap each other (the chain the
    co-alignment follows); every other stride a multiple of dilation 1's, so that a level only runs
    at frames where dilation 1 runs too (coverage then grows without gaps)."""
    dilations, strides = list(dilations), list(strides)
    if len(strides) != len(dilations) or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in strides):
        raise BadInputError(f"--strides {','.join(map(str, strides)) or '(none)'}: give one whole number >= 1 per "
                            f"dilation ({','.join(map(str, dilations))})")
    base = strides[dilations.index(1)] if 1 in dilations else 1
    if base > snip_len - 1:
        raise BadInputError(f"--strides: dilation 1 every {base} frames leaves frames uncovered or snippets unlinked "
                            f"with --snip-len {snip_len}; use at most {snip_len - 1}")
    bad = [f"{d}:{k}" for d, k in zip(dilations, strides) if k % base]
    if bad:
        raise BadInputError(f"--strides {','.join(bad)}: each stride must be a multiple of dilation 1's ({base})")


def runs_at(end: int, dilation: int, stride: int, snip_len: int) -> bool:
    """Whether the level (dilation, stride) has a snippet ending at frame ``end``: it fits (first frame
    >= 0) and ``end - (L - 1)`` is a multiple of the stride (every level counts its stride from the
    first full snippet of dilation 1, so that the first frames are always covered)."""
    return end - (snip_len - 1) * dilation >= 0 and (end - (snip_len - 1)) % stride == 0


def plan_snippets(num_frames: int, dilations, snip_len: int = 3, cap: bool = True,
                  strides=None) -> list[SnippetLevel]:
    """Offline snippets: for each dilation d, the snippets ``(e - (L-1)d, ..., e)`` for every end frame e
    (stride 1: every start in [0, N-1-(L-1)d], as the reference).

    strides: one per dilation (None = all 1): a level of stride k ends snippets only where ``runs_at``
    says, as live; dilation 1 also keeps the snippet ending at the last frame, so the end is covered.
    Raises BadInputError when the clip is too short for any snippet of some dilation.
    """
    check_snippet_options(snip_len, dilations)
    strides = tuple(strides) if strides is not None else (1,) * len(tuple(dilations))
    check_strides(snip_len, dilations, strides)
    plans = []
    for requested, stride in zip(dilations, strides):
        d = cap_dilation(requested, num_frames, snip_len) if cap else requested
        count = num_frames - (snip_len - 1) * d
        if count < 1:
            raise BadInputError(
                f"the clip has {num_frames} frames: too short for snippets of {snip_len} frames at dilation {d} "
                f"(needs at least {(snip_len - 1) * d + 1}; use fewer --dilations or a longer clip)"
            )
        ends = [e for e in range(num_frames) if runs_at(e, d, stride, snip_len)]
        if d == 1 and ends[-1] != num_frames - 1:
            ends.append(num_frames - 1)
        frames = tuple(tuple(e - (snip_len - 1 - j) * d for j in range(snip_len)) for e in ends)
        plans.append(SnippetLevel(requested, d, frames))
    return plans


def snippet_frames(num_frames: int, dilations, snip_len: int = 3, cap: bool = True, strides=None) -> list[tuple[int, ...]]:
    """The frame tuples of every offline snippet, level after level (``plan_snippets`` flattened)."""
    return [frames for level in plan_snippets(num_frames, dilations, snip_len, cap, strides) for frames in level.frames]


# ----------------------------------------------------------------------------- live snippets
# A live node keeps ``SnippetPlan.history(lookahead)`` = (L - 1) x the largest dilation + 1 +
# lookahead frames (latents and depth) for as long as it runs, so these bound its memory: at most
# about 3000 frames, 100 s at 30 fps, where the presets keep 53.
MAX_LIVE_DILATION = 1000
MAX_LOOKAHEAD = 1000


def check_lookahead(lookahead: int, what: str = "--lookahead") -> None:
    """BadInputError unless 0 <= ``lookahead`` <= MAX_LOOKAHEAD; ``what`` names it in the message
    (an option; "" where the caller names it)."""
    if not 0 <= lookahead <= MAX_LOOKAHEAD:
        given = f"{what} {lookahead}" if what else str(lookahead)
        raise BadInputError(f"{given}: must be 0 (lowest latency) to {MAX_LOOKAHEAD} frames (a live node keeps "
                            "that many frames waiting in memory)")


@dataclass(frozen=True)
class SnippetPlan:
    """How a live node builds snippets: snippet length L and dilations, counted in processed frames.

    Live, one snippet per dilation ends at each new frame t: ``(t - (L-1) d, ..., t - d, t)``
    (docs/method.md, section 8). Dilations are kept sorted and unique; 1 must be among them.

    strides: one per dilation, in the order given (empty = all 1). A level of stride k runs at every
    k-th frame only (``runs_at``): fewer UNet frame-passes per output frame, each frame in fewer
    snippets. Checked by ``check_strides``; kept sorted with the dilations.
    """

    snip_len: int = 3
    dilations: tuple[int, ...] = (1, 25)
    strides: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        check_snippet_options(self.snip_len, self.dilations)
        if max(self.dilations) > MAX_LIVE_DILATION:
            raise BadInputError(f"--dilations {max(self.dilations)}: a live node takes dilations up to "
                                f"{MAX_LIVE_DILATION} frames (it keeps (L - 1) x the largest in memory)")
        strides = tuple(self.strides) or (1,) * len(tuple(self.dilations))
        check_strides(self.snip_len, self.dilations, strides)
        pairs = dict(zip(self.dilations, strides))
        object.__setattr__(self, "dilations", tuple(sorted(pairs)))
        object.__setattr__(self, "strides", tuple(pairs[d] for d in sorted(pairs)))

    @property
    def base_stride(self) -> int:
        """Dilation 1's stride: its snippets end every ``base_stride`` frames."""
        return self.strides[self.dilations.index(1)]

    def unet_passes_per_frame(self) -> float:
        """UNet frame-passes per frame in steady state: ``sum(L / stride)`` (6 for L=3, dilations 1 and 25)."""
        return sum(self.snip_len / k for k in self.strides)

    @property
    def span(self) -> int:
        """Frames the longest snippet reaches over: ``(L - 1) * max(dilations) + 1`` (51 for L=3, d=25)."""
        return (self.snip_len - 1) * max(self.dilations) + 1

    def history(self, lookahead: int = 0) -> int:
        """Frames a live node keeps so that the widest snippet still meets the frames it aligns
        against, plus ``lookahead`` frames waiting to be emitted: ``span + lookahead``."""
        return self.span + lookahead

    def snippets_ending_at(self, newest: int) -> list[tuple[int, ...]]:
        """One snippet per dilation that fits (first index >= 0), ending at frame ``newest``.

        Early in a stream only the smaller dilations fit. Returns tuples of L increasing indices,
        in the order of ``dilations``.
        """
        out = []
        for d, stride in zip(self.dilations, self.strides):
            if runs_at(newest, d, stride, self.snip_len):
                out.append(tuple(range(newest - (self.snip_len - 1) * d, newest + 1, d)))
        return out

    def covered_before(self, newest: int) -> int:
        """The newest frame covered (every frame up to it, without gaps) by the snippets that ended
        before frame ``newest``: the end of the last dilation-1 snippet before it, -1 if none."""
        first = self.snip_len - 1
        if newest - 1 < first:
            return -1
        return newest - 1 - (newest - 1 - first) % self.base_stride

    def tail_snippet(self, last: int) -> tuple[int, ...] | None:
        """At the end of a stream whose last frame is ``last``: the dilation-1 snippet ending there when
        the stride skipped it (so the last frames are covered), else None."""
        if last < self.snip_len - 1 or runs_at(last, 1, self.base_stride, self.snip_len):
            return None
        return tuple(range(last - self.snip_len + 1, last + 1))


def short_stream_snippet(count: int) -> tuple[int, ...]:
    """When a stream ends before any full snippet fits, one snippet of all its ``count`` frames."""
    return tuple(range(count))


# ----------------------------------------------------------------------------- lookahead
def coverage_at_lookahead(lookahead: int, snip_len: int, dilations) -> int:
    """Snippets that cover a frame of a live stream by the time it is output ``lookahead`` frames late.

    The snippet of dilation d ending at frame t covers t - j d for j = 0..L-1, so it covers frame f
    at position j once frame f + j d has arrived: one snippet per (d, j) with ``j * d <= lookahead``
    (L=3, dilations 1 and 25: 2 at lookahead 0, 3 at 1, 4 at 2..24, 5 at 25..49, 6 from 50).
    Counted once the stream has run longer than the widest snippet.
    """
    return sum(1 for d in set(dilations) for j in range(snip_len) if j * d <= lookahead)


def useful_lookaheads(snip_len: int, dilations) -> tuple[int, ...]:
    """The lookahead values at which one more snippet covers each output frame, with 0 (the lowest
    latency): the distinct ``j * d`` for j = 0..L-1 (L=3, dilations 1 and 25: 0, 1, 2, 25, 50).
    Any other value covers a frame with as many snippets as the useful value below it."""
    return tuple(sorted({j * d for d in set(dilations) for j in range(snip_len)}))


def lookahead_latency_note(lookahead: int, snip_len: int, dilations) -> str | None:
    """One line saying that ``lookahead`` only adds latency (None when it adds coverage)."""
    useful = useful_lookaheads(snip_len, dilations)
    if lookahead in useful:
        return None
    best = max(v for v in useful if v <= lookahead)
    covered = coverage_at_lookahead(best, snip_len, dilations)
    return (f"--lookahead {lookahead}: each frame gets the same {covered} snippets as with --lookahead {best}; "
            f"the {lookahead - best} extra frames only add latency (useful values: {', '.join(map(str, useful))})")

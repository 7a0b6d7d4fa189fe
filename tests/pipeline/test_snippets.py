"""Snippet indices and dilation capping (docs/method.md, section 4); the snippets a live node runs as
each frame arrives."""

import pytest

from pipeline.errors import BadInputError
from pipeline.diffusion_refine import refine_dilations, refine_schedule
from pipeline.snippets import SnippetPlan, coverage_at_lookahead, lookahead_latency_note, plan_snippets, useful_lookaheads


def test_fast_preset_on_100_frames_gives_98_plus_50_snippets():
    plans = plan_snippets(100, (1, 25), 3, cap=True)
    assert [len(p.frames) for p in plans] == [98, 50]
    assert plans[1].frames[0] == (0, 25, 50) and plans[1].frames[-1] == (49, 74, 99)
    assert sum(len(p.frames) * 3 for p in plans) == 444


def test_dilation_is_capped_on_short_clips_and_keeps_its_name():
    plan60 = plan_snippets(60, (1, 25), 3, cap=True)[1]
    assert (plan60.requested, plan60.dilation) == (25, 19)
    plan50 = plan_snippets(50, (1, 25), 3, cap=True)[1]
    assert (plan50.dilation, len(plan50.frames)) == (15, 20)


def test_without_cap_a_too_long_dilation_is_a_clear_error():
    with pytest.raises(BadInputError, match="too short"):
        plan_snippets(40, (1, 25), 3, cap=False)


@pytest.mark.parametrize("frames", [0, 1, 2])
def test_clip_too_short_for_any_snippet(frames):
    with pytest.raises(BadInputError, match="too short"):
        plan_snippets(frames, (1,), 3)


def test_dilations_must_include_one():
    with pytest.raises(BadInputError, match="include 1"):
        plan_snippets(100, (10, 25), 3)


def test_refinement_dilation_schedule():
    assert refine_dilations(10, 6) == [6, 5, 5, 4, 4, 3, 3, 2, 1, 1]


def test_refinement_schedule_caps_the_start_dilation_on_short_clips():
    # the reference caps --refine-start-dilation with cap_dilation: int(20 / 3) - 1 = 5 at N = 20
    assert refine_schedule(20, 10, 3, 6, cap=True) == [5, 4, 4, 3, 3, 3, 2, 2, 1, 1]
    assert refine_schedule(21, 10, 3, 6, cap=True) == [6, 5, 5, 4, 4, 3, 3, 2, 1, 1]
    # preset paper (cap off): the requested start, lowered only where frames would go uncovered
    assert refine_schedule(20, 10, 3, 6, cap=False) == [6, 5, 5, 4, 4, 3, 3, 2, 1, 1]
    assert refine_schedule(12, 10, 3, 6, cap=False) == [4, 4, 4, 4, 4, 3, 3, 2, 1, 1]
    # a huge start (--refine-start-dilation 10**30) is lowered at once, not one step at a time
    assert refine_schedule(12, 3, 3, 10**30, cap=False) == [4, 4, 4]


def test_refinement_snippet_longer_than_the_clip_is_a_clear_error():
    with pytest.raises(BadInputError, match="--refine-snippet-len 4: the clip has only 3 frames"):
        refine_schedule(3, 10, 4, 6)


def test_lookahead_coverage_follows_the_snippet_offsets():
    # L=3, dilations 1 and 25: a frame gains a snippet at lookahead 1, 2, 25 and 50 only
    counts = [coverage_at_lookahead(la, 3, (1, 25)) for la in range(0, 60)]
    assert counts[:3] == [2, 3, 4] and set(counts[2:25]) == {4} and set(counts[25:50]) == {5} and set(counts[50:]) == {6}
    assert useful_lookaheads(3, (1, 25)) == (0, 1, 2, 25, 50)
    assert useful_lookaheads(3, (1, 10, 25)) == (0, 1, 2, 10, 20, 25, 50)
    assert useful_lookaheads(2, (1, 5)) == (0, 1, 5)
    # each useful value adds coverage; every other value matches the useful value below it
    for la in range(1, 60):
        gains = coverage_at_lookahead(la, 3, (1, 10, 25)) > coverage_at_lookahead(la - 1, 3, (1, 10, 25))
        assert gains == (la in useful_lookaheads(3, (1, 10, 25)))


def test_lookahead_note_only_for_values_that_add_latency():
    assert lookahead_latency_note(2, 3, (1, 25)) is None and lookahead_latency_note(25, 3, (1, 25)) is None
    note = lookahead_latency_note(10, 3, (1, 25))
    assert note.startswith("--lookahead 10: each frame gets the same 4 snippets as with --lookahead 2;")
    assert "useful values: 0, 1, 2, 25, 50" in note and "\n" not in note
    assert "as with --lookahead 50" in lookahead_latency_note(80, 3, (1, 25))


def test_snippets_end_at_new_frame_and_only_fitting_dilations_early():
    assert SnippetPlan(3, (1, 25)).snippets_ending_at(0) == []
    assert SnippetPlan(3, (1, 25)).snippets_ending_at(2) == [(0, 1, 2)]
    assert SnippetPlan(3, (1, 25)).snippets_ending_at(49) == [(47, 48, 49)]
    assert SnippetPlan(3, (1, 25)).snippets_ending_at(50) == [(48, 49, 50), (0, 25, 50)]


def test_stream_snippet_count_equals_offline_stride_one_count():
    # offline, N frames: N - (L-1)d snippets per dilation (no capping) -> the same set as the stream
    n, dilations = 100, (1, 25)
    total = sum(len(SnippetPlan(3, dilations).snippets_ending_at(t)) for t in range(n))
    assert total == (n - 2) + (n - 50) == 148

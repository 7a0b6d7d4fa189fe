"""stream.stages.snippet_stage: the stage awaits a snippet's result off the model thread."""

from __future__ import annotations

from pipeline.snippets import SnippetPlan


def test_snippet_stage_waits_for_results_off_the_model_thread():
    # while a frame's result is awaited, the model thread is free to queue the next frame's encode
    import threading

    import anyio

    from stream.stages.messages import EncodedFrame, FrameTiming, StreamEnd
    from stream.model.model_thread import ModelThread
    from stream.stages.snippet_stage import SnippetStage
    from stream.stages.stage import make_link

    release, encode_ran = threading.Event(), threading.Event()

    class QueuingSteps:
        def start_predict(self, latents, merged):
            def finish():
                assert release.wait(10), "the result was awaited on the model thread"
                return [object() for _ in latents]
            return finish

        def predict(self, latents, merged):  # what a stage without the split would call, blocking
            return self.start_predict(latents, merged)()

    model_thread = ModelThread()
    stage = SnippetStage(QueuingSteps(), SnippetPlan(3, (1,)), model_thread)
    received = []

    async def main():
        for i in range(2):
            stage.window.add(i, f"latent {i}")
        (send_in, receive_in), (send_out, receive_out) = make_link(), make_link()
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(stage.run, receive_in, send_out)
            await send_in.send(EncodedFrame(timing=FrameTiming(2, 2, 0.0, 0.0), rgb=None, latent="latent 2"))
            await anyio.sleep(0.2)
            await model_thread.run(encode_ran.set)  # the next frame's encode gets the model thread
            assert encode_ran.is_set() and not release.is_set()
            release.set()
            await send_in.send(StreamEnd("source ended"))
            async with receive_out:
                received.extend([item async for item in receive_out])

    try:
        anyio.run(main)
    finally:
        model_thread.close()
    assert [len(item.snippets) for item in received[:-1]] == [1] and isinstance(received[-1], StreamEnd)

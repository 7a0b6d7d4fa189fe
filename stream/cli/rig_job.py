"""``rdstream rig``'s job: the checked ``RigSpec`` run as one live job of N streams, one line each at the end.

The steps are stream.cli.live_job's (the same as ``rdstream run``'s, for every stream): claim every
output file -> open each source -> load the model once -> per stream its steps, aligner and sinks ->
run the streams together (stream.rig) -> one summary line per stream. The exit code is 1 when any
stream failed (its source failed, every sink of it failed, or an error ended it), after every other
stream has finished.
"""

from __future__ import annotations

from rich.console import Console

from pipeline.errors import RuntimeFailure
from pipeline.tiny_decoder import resolve_decoder
from pipeline.tiny_encoder import resolve_encoder
from stream.cli.live_job import LiveJob, run_live
from stream.cli.rig_file import RigSpec, rig_autoencoders
from stream.cli.run_job import summary_line
from stream.rig import StreamOutcome


def run_rig(spec: RigSpec) -> int:
    console = Console(stderr=True)
    decoder_name, encoder_name = rig_autoencoders(spec)  # one model, so one decoder and encoder for every stream

    def finish(outcomes: list[StreamOutcome]) -> int:
        for outcome in outcomes:
            console.print(f"rdstream rig: {outcome.name}: {_outcome_text(outcome)}", highlight=False, markup=False,
                          soft_wrap=True)
        failed = [o for o in outcomes if o.failed]
        if failed:
            raise RuntimeFailure(f"{len(failed)} of {len(outcomes)} streams failed: "
                                 + "; ".join(f"{o.name}: {_why(o)}" for o in failed))
        return 0

    job = LiveJob(spec.streams, resolve_decoder(decoder_name), resolve_encoder(encoder_name),
                  start_lines=lambda model: _start_lines(spec, model), finish=finish,
                  outputs={"[rig] stats_json": spec.stats_json}, stats_json=spec.stats_json,
                  compile=bool(spec.model.get("compile")), max_wait_s=spec.max_wait_s, status=spec.status,
                  osc=spec.osc, osc_status=spec.osc_status, monitor=spec.monitor)
    return run_live(job, console)


def _start_lines(spec: RigSpec, model) -> str:
    """The rig's first lines: the model, then per stream what goes where and its settings."""
    from pipeline.checkpoint import device_label

    lines = [f"rdstream rig: {spec.path}: {len(spec.streams)} streams, one model ({device_label(model.device)} "
             f"{str(model.dtype).removeprefix('torch.')}, decoder {model.decoder.name}); Ctrl-C stops all"]
    for stream in spec.streams:
        policy = "realtime" if stream.basics.drop_frames else "every frame"
        fill = stream.basics.fill
        if fill is not None and fill.realtime and fill.fill != "drop":
            policy += f", every frame out (--fill {fill.fill})"
        lines.append(f"  {stream.name}: {stream.options.source} -> {', '.join(stream.options.sinks)} ({policy}, "
                     f"lookahead {stream.options.lookahead}, quality {stream.options.quality}, speed {stream.options.speed}: "
                     f"strides {','.join(map(str, stream.basics.plan.strides))}, snippets of {stream.basics.plan.snip_len}, "
                     f"fit decode {stream.basics.quality.fit_decode})")
    return "\n".join(lines)


def _outcome_text(outcome: StreamOutcome) -> str:
    return f"failed: {outcome.error}" if outcome.error is not None else summary_line(outcome.result)


def _why(outcome: StreamOutcome) -> str:
    if outcome.error is not None:
        return str(outcome.error)
    result = outcome.result
    if result.source_error is not None:
        return f"source failed: {result.source_error}"
    return "every sink failed: " + "; ".join(f"{uri}: {err}" for uri, err in result.failed_sinks.items())

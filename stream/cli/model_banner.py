"""What every command says about a loaded model before it runs: red banners when its output is
not depth (a random test checkpoint, decoder or encoder), and the mark its colour outputs carry."""

from __future__ import annotations

from rich.console import Console
from rich.text import Text

from io_adapters.encodings import RANDOM_MARK_NOTE, RANDOM_MODEL_MARK
from pipeline.checkpoint import TINY_WARNING
from pipeline.tiny_decoder import TINY_DECODER_WARNING


def announce_model(model, console: Console) -> str | None:
    """Print the banners that apply to ``model`` (a ``RollingDepthModel``) and return the mark
    burnt into its colour outputs: ``RANDOM_MODEL_MARK`` when its output is noise, else None."""
    if model.is_tiny:
        console.print(Text(TINY_WARNING, style="bold red"), soft_wrap=True)
    if model.decoder.is_random or model.encoder.is_random:
        console.print(Text(TINY_DECODER_WARNING, style="bold red"), soft_wrap=True)
    if not model.output_is_noise:
        return None
    console.print(Text(RANDOM_MARK_NOTE, style="bold red"), soft_wrap=True)
    return RANDOM_MODEL_MARK

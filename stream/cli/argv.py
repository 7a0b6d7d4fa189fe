"""Command-line habits of the reference ``run_video.py`` (argparse) turned into what typer parses.

``-d 1 10 25`` (several values after one flag) becomes ``-d 1 -d 10 -d 25``; ``--save-npy false``
becomes ``--no-save-npy``; a negative number after an option is a value, not an option.
"""

from __future__ import annotations

import os
import re
from typing import List, Optional

from pipeline.errors import BadInputError

DECODER_HELP = ("depth decoder: full (the checkpoint's VAE) | tiny (AutoencoderTiny madebyollin/taesd, downloaded "
                "on first use; faster, quality unmeasured here: check it with rdstream dev compare-decoders) | "
                "a folder or hub id of an AutoencoderTiny; the encoder is --encoder's")
STRIDES_HELP = ("snippet stride per dilation, same order as --dilations, e.g. --strides 1,2 (dilation 25 every 2nd "
                "frame): fewer UNet passes per frame; dilation 1's at most --snip-len - 1, the others multiples of it")
ENCODER_HELP = ("RGB encoder: full (the checkpoint's VAE) | tiny (the encoder of AutoencoderTiny madebyollin/taesd, "
                "the same as --decoder tiny) | a folder or hub id of an AutoencoderTiny")
SPEED_HELP = ("cost ladder rung, from today's default to the cheapest: standard (every dilation at every frame) | pair "
              "(2-frame snippets, dilation 25 every 2nd frame) | stride2 (snippets every 2nd frame) | lite (stride2 + tiny "
              "encoder and decoder); see docs/streaming.md and rdstream dev evaluate")
# The hub id first, so that help at 80 columns does not break it at its hyphen.
DEFAULT_CHECKPOINT_HELP = "default prs-eth/rollingdepth-v1-0 (or $RDSTREAM_CHECKPOINT when set); a checkpoint folder or hub id"
# A value that starts with a dash but is a number (``-d -25``, ``--res -5``): a value, not an option,
# so that the option's own check names it ("--dilations -25: must be positive ...").
NEGATIVE_NUMBER = re.compile(r"^-[0-9][0-9.,]*$")
# Options the reference run_video.py takes as several values after one flag (argparse nargs).
MULTI_VALUE = {"-d": "int", "--dilations": "int", "--strides": "int", "--cmap": "name"}
# Boolean options the reference takes as `--flag true|false`.
BOOL_FLAGS = {"--restore-res", "--save-sbs", "--save-npy", "--save-snippets", "--cap-dilation",
              "--unload-snippet", "--verbose", "--save-16bit"}
TRUE, FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}


def normalize_argv(args: list[str]) -> list[str]:
    """Accept the reference's argparse habits: ``-d 1 10 25`` and ``--save-npy false``."""
    out: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in MULTI_VALUE:
            kind = MULTI_VALUE[arg]
            i += 1
            values = []
            while i < len(args) and (not args[i].startswith("-") or NEGATIVE_NUMBER.match(args[i])):
                token = args[i]
                looks_right = token.replace(",", "").lstrip("-").isdigit() if kind == "int" else ("." not in token and "/" not in token)
                if values and not looks_right:
                    break
                values.append(token)
                i += 1
            for value in values or [""]:
                out += [arg, value]
            continue
        if arg in BOOL_FLAGS and i + 1 < len(args) and args[i + 1].lower() in TRUE | FALSE:
            out.append(arg if args[i + 1].lower() in TRUE else "--no-" + arg[2:])
            i += 2
            continue
        if arg in BOOL_FLAGS and i + 1 < len(args) and looks_like_a_bad_boolean(args[i + 1]):
            raise BadInputError(f"{arg} {args[i + 1]}: not a boolean; give {arg} true|false (or yes|no, 1|0, on|off), "
                                f"or {arg} / --no-{arg[2:]} alone")
        out.append(arg)
        i += 1
    return out


def looks_like_a_bad_boolean(token: str) -> bool:
    """After a boolean flag: a plain word (``maybe``) that is no file or folder was meant as its
    value, not as an input; ``clip.mp4``, ``videos/`` or an existing ``clips`` folder is an input."""
    return (token.isidentifier() and token.lower() not in TRUE | FALSE and not os.path.exists(token))


def split_values(values: Optional[List[str]], cast=str) -> Optional[list]:
    """``["1,10", "25"]`` -> ``[1, 10, 25]``; None stays None."""
    if not values:
        return None
    items = [v for value in values for v in value.replace(",", " ").split()]
    try:
        return [cast(v) for v in items]
    except ValueError:
        raise BadInputError(f"expected whole numbers, got {' '.join(items)}") from None


def default_checkpoint() -> str:
    return os.environ.get("RDSTREAM_CHECKPOINT") or "prs-eth/rollingdepth-v1-0"

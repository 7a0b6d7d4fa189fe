"""The seeds the shared noise takes, checked before torch loads (``--seed``, a rig's ``seed``).

``torch.Generator.manual_seed`` takes 64-bit seeds and maps negative ones onto positive ones
(-1 draws the same noise as 2**64 - 2), so the range offered is the unsigned one: every seed
gives its own noise, and every seed outside it is one clear line instead of an overflow after
the model loaded.
"""

from __future__ import annotations

from pipeline.errors import BadInputError

SEED_MIN = 0
SEED_MAX = 2**64 - 1


def check_seed(seed: int | None, what: str = "--seed") -> None:
    """BadInputError unless ``seed`` is None (random noise) or in [SEED_MIN, SEED_MAX];
    ``what`` names where it came from in the message (an option; "" where the caller names it)."""
    if seed is not None and not SEED_MIN <= seed <= SEED_MAX:
        given = f"{what} {seed}" if what else str(seed)
        raise BadInputError(f"{given}: must be a whole number from {SEED_MIN} to {SEED_MAX} (2**64 - 1)")

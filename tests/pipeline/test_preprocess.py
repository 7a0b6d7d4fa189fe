"""Resampling-method names: ours and the reference's spellings."""

import pytest
import torch

from pipeline.errors import BadInputError
from pipeline.offline import OfflineSettings, check_settings
from pipeline.preprocess import resample_mode, resize


@pytest.mark.parametrize(
    "given, ours",
    [("BILINEAR", "bilinear"), ("BICUBIC", "bicubic"), ("NEAREST", "nearest"), ("NEAREST_EXACT", "nearest-exact"),
     ("nearest_exact", "nearest-exact"), ("Nearest-Exact", "nearest-exact"), ("area", "area"), ("bilinear", "bilinear")],
)
def test_reference_spellings_map_to_ours(given, ours):
    assert resample_mode(given) == ours


def test_resize_and_offline_settings_take_the_reference_spelling():
    images = torch.rand(1, 3, 20, 30)
    assert torch.equal(resize(images, (10, 15), "BICUBIC"), resize(images, (10, 15), "bicubic"))
    assert torch.equal(resize(images, (40, 60), "NEAREST_EXACT"), resize(images, (40, 60), "nearest-exact"))
    check_settings(OfflineSettings(resample_method="BILINEAR"))


def test_a_wrong_method_lists_the_accepted_ones():
    with pytest.raises(BadInputError) as info:
        resample_mode("LANCZOS")
    message = str(info.value)
    assert message.startswith("--resample-method LANCZOS: use one of bilinear, bicubic, nearest, nearest-exact, area")
    assert "NEAREST_EXACT" in message and "\n" not in message

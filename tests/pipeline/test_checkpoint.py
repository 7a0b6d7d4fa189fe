"""Checkpoint validation, device/dtype resolution and the cached empty-prompt embedding."""

import json
import shutil

import pytest
import torch

from pipeline import checkpoint as ck
from pipeline.errors import BadInputError


@pytest.fixture
def ckpt_copy(tiny_checkpoint, tmp_path):
    dest = tmp_path / "ck"
    shutil.copytree(tiny_checkpoint, dest)
    return dest


def test_tiny_checkpoint_loads_in_the_real_layout(tiny_model):
    assert tiny_model.is_tiny
    assert tiny_model.vae_scale == 8
    assert tiny_model.text_embedding.shape == (1, 2, 32)
    assert tiny_model.unet.config.in_channels == 8


@pytest.mark.parametrize(
    "breakage, message",
    [
        (lambda p: shutil.rmtree(p / "unet"), "unet/ subfolder is missing"),
        (lambda p: (p / "vae" / "config.json").unlink(), "vae/config.json is missing"),
        (lambda p: (p / "unet" / "diffusion_pytorch_model.safetensors").unlink(), "no weights in unet/"),
        (lambda p: (p / "model_index.json").unlink(), "model_index.json is missing"),
        (lambda p: (p / "unet" / "config.json").write_text("{not json"), "not valid JSON"),
        (lambda p: (p / "model_index.json").write_text("{not json"), "model_index.json is not valid JSON"),
        (lambda p: (p / "model_index.json").write_text("[]"), "model_index.json is not a model config"),
        (lambda p: (p / "scheduler" / "scheduler_config.json").write_text("{}" + " " * 2**20),
         "scheduler/scheduler_config.json: larger than 1 MiB"),
    ],
)
def test_incomplete_checkpoint_gives_one_line_naming_the_problem(ckpt_copy, breakage, message):
    breakage(ckpt_copy)
    with pytest.raises(BadInputError, match=message) as info:
        ck.load_rolling_depth(str(ckpt_copy), "cpu")
    assert str(ckpt_copy) in str(info.value) and "\n" not in str(info.value)


def test_unet_with_wrong_in_channels_is_rejected_before_loading(ckpt_copy):
    config = json.loads((ckpt_copy / "unet" / "config.json").read_text())
    config["in_channels"] = 4
    (ckpt_copy / "unet" / "config.json").write_text(json.dumps(config))
    with pytest.raises(BadInputError, match="in_channels is 4"):
        ck.load_rolling_depth(str(ckpt_copy), "cpu")


def test_weights_with_wrong_shapes_are_a_clear_error(ckpt_copy):
    config = json.loads((ckpt_copy / "unet" / "config.json").read_text())
    config["block_out_channels"] = [64, 128]
    (ckpt_copy / "unet" / "config.json").write_text(json.dumps(config))
    with pytest.raises(BadInputError, match="cannot load weights") as info:
        ck.load_rolling_depth(str(ckpt_copy), "cpu")
    assert "\n" not in str(info.value)


def test_missing_folder_and_unavailable_hub_id():
    with pytest.raises(BadInputError, match="no such folder"):
        ck.load_rolling_depth("/nonexistent/checkpoint", "cpu")


def test_empty_prompt_embedding_is_cached_and_the_encoder_not_needed_again(ckpt_copy, tmp_path, monkeypatch):
    monkeypatch.setenv(ck.CACHE_ENV, str(tmp_path / "cache"))
    first = ck.empty_text_embedding(ckpt_copy)
    assert list((tmp_path / "cache" / "text_embeddings").glob("*.pt"))
    import transformers

    def refuse(*args, **kwargs):
        raise AssertionError("the text encoder was loaded again")

    monkeypatch.setattr(transformers.CLIPTextModel, "from_pretrained", refuse)
    assert torch.equal(ck.empty_text_embedding(ckpt_copy), first)


def test_device_resolution():
    assert ck.resolve_device("cpu").type == "cpu"
    assert ck.resolve_device("auto").type in ("cpu", "cuda", "mps")
    if not torch.backends.mps.is_available():
        with pytest.raises(BadInputError, match="MPS is not available"):
            ck.resolve_device("mps")
    with pytest.raises(BadInputError, match="unknown device"):
        ck.resolve_device("tpu")


def test_dtype_defaults_and_choices():
    assert ck.resolve_dtype(None, torch.device("cpu")) == torch.float32
    assert ck.resolve_dtype(None, torch.device("cuda")) == torch.float16
    assert ck.resolve_dtype("bf16", torch.device("cpu")) == torch.bfloat16
    with pytest.raises(BadInputError, match="unknown dtype"):
        ck.resolve_dtype("fp8", torch.device("cpu"))

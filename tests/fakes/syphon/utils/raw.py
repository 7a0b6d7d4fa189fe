"""Fake of syphon.utils.raw."""

from syphon import CALLS, FakeTexture


def create_mtl_texture(device, width: int, height: int, **_):
    CALLS.append(("texture", None, (width, height)))
    return FakeTexture(width, height)

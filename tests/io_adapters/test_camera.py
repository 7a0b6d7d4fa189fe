"""Camera device arguments per OS (no camera needed) and the error without one."""

import pytest

from io_adapters.camera import CameraOpenArgs, camera_open_args
from io_adapters.registry import open_source
from pipeline.errors import BadInputError


def test_macos_avfoundation_args():
    args = camera_open_args("0", (1280, 720), None, None, platform="darwin")
    assert args == CameraOpenArgs("0:none", "avfoundation", {"framerate": "30", "video_size": "1280x720"})
    named = camera_open_args("FaceTime HD Camera", None, 29.97, "uyvy422", platform="darwin")
    assert named == CameraOpenArgs("FaceTime HD Camera:none", "avfoundation", {"framerate": "29.97", "pixel_format": "uyvy422"})


def test_linux_v4l2_args():
    assert camera_open_args("2", None, None, None, platform="linux") == CameraOpenArgs("/dev/video2", "v4l2", {"framerate": "30"})
    args = camera_open_args("/dev/video5", (1920, 1080), 60, "mjpeg", platform="linux")
    assert args == CameraOpenArgs("/dev/video5", "v4l2", {"framerate": "60", "video_size": "1920x1080", "input_format": "mjpeg"})
    devices = [("/dev/video0", "Integrated Camera"), ("/dev/video4", "Logitech BRIO")]
    assert camera_open_args("logitech brio", None, None, None, platform="linux", devices=devices).file == "/dev/video4"
    with pytest.raises(BadInputError, match=r"no camera named 'Elgato'.*Logitech BRIO"):
        camera_open_args("Elgato", None, None, None, platform="linux", devices=devices)


def test_windows_dshow_args():
    devices = [("@device_pnp_a", "Integrated Webcam"), ("@device_pnp_b", "OBS Virtual Camera")]
    args = camera_open_args("1", (640, 480), 30, "mjpeg", platform="win32", devices=devices)
    assert args == CameraOpenArgs("video=OBS Virtual Camera", "dshow", {"framerate": "30", "video_size": "640x480", "vcodec": "mjpeg"})
    raw = camera_open_args("Integrated Webcam", None, None, "yuyv422", platform="win32")
    assert raw == CameraOpenArgs("video=Integrated Webcam", "dshow", {"framerate": "30", "pixel_format": "yuyv422"})
    with pytest.raises(BadInputError, match=r"no camera number 5.*0: Integrated Webcam"):
        camera_open_args("5", None, None, None, platform="win32", devices=devices)


def test_unsupported_platform_and_empty_target():
    with pytest.raises(BadInputError, match="not supported on sunos5"):
        camera_open_args("0", None, None, None, platform="sunos5")
    with pytest.raises(BadInputError, match="needs an index or a name"):
        camera_open_args(" ", None, None, None, platform="linux")


def test_missing_camera_is_a_clear_error():
    # Device 63 does not exist on a test machine (nor on any usual desktop).
    with pytest.raises(BadInputError, match=r"cannot open camera '63'.*cameras:"):
        open_source("camera:63?size=640x480")

"""Rendered video with known depth, numpy only: colour frames and their true inverse depth.

``synthetic_depth.py`` draws depth alone (no colour), which optical flow cannot follow; these scenes
are ray-cast so colour and depth come from the same geometry: a textured ground plane and a back
wall under a camera that moves sideways (so near ground moves faster than far ground: parallax) and
tilts a little up and down as a hand-held camera does (so the ground's depth changes too),
and three textured spheres moving across it at different depths, so they pass in front of each
other and of the ground (occlusions and disocclusions, sharp depth edges).

Two texture levels: ``smooth`` (soft shading, a few low-frequency tones: little for optical flow to
hold on to inside a surface) and ``heavy`` (high-contrast high-frequency patterns and a checker:
the case where colour edges are not depth edges). Two speeds: ``slow`` (near ground ~2.5 px per frame
at 384 px wide) and ``fast`` (~8 px). The scene is defined in normalised image coordinates, so any
size renders the same picture (384x216, 640x360, 1280x720); textures are pre-filtered to each
pixel's footprint, so small sizes do not alias. Deterministic for a seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

TEXTURES = ("smooth", "heavy")
SPEEDS = {"slow": 0.016, "fast": 0.048}  # camera travel per frame, world units (camera height 1.2)
CAMERA_HEIGHT = 1.2
PITCH = math.radians(14)  # camera looks slightly down
WOBBLE = math.radians(1.5)  # a hand-held camera's tilt, up and down (ground depth changes with it)
WOBBLE_PERIOD = 1.5  # world units of travel per tilt cycle: a faster camera shakes faster
FOCAL = 1.0  # in image widths (about 53 degrees across)
WALL_Z = 14.0
LIGHT = np.array([-0.4, 0.8, -0.45]) / np.linalg.norm([-0.4, 0.8, -0.45])


@dataclass(frozen=True)
class RenderedScene:
    """Frames of one rendered scene.

    Attributes:
        rgb: uint8 ``[N, H, W, 3]``.
        inverse_depth: float32 ``[N, H, W]``, 1 / (distance along the view axis), positive, larger =
            nearer (about ``[0.07, 0.5]``): the quantity the depth model estimates (up to scale and
            shift).
    """

    rgb: np.ndarray
    inverse_depth: np.ndarray


@dataclass(frozen=True)
class _Texture:
    frequencies: np.ndarray  # [K, D] cycles per world unit
    phases: np.ndarray  # [K]
    weights: np.ndarray  # [K, 3] per colour channel
    checker: float  # cycles per unit of the checker (0: none)


def _texture(rng: np.random.Generator, level: str, dims: int) -> _Texture:
    if level == "heavy":
        count, low, high, amplitude, checker = 10, 0.8, 9.0, 0.5, 2.5
    else:
        count, low, high, amplitude, checker = 4, 0.15, 1.0, 0.25, 0.0
    directions = rng.normal(size=(count, dims))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    magnitudes = np.exp(rng.uniform(math.log(low), math.log(high), size=count))
    weights = amplitude * rng.uniform(-1.0, 1.0, size=(count, 3)) / math.sqrt(count)
    return _Texture(directions * magnitudes[:, None], rng.uniform(0, 2 * math.pi, count), weights, checker)


def _shade(texture: _Texture, points: np.ndarray, footprint: np.ndarray) -> np.ndarray:
    """Texture value ``[P, 3]`` around 0 at ``points [P, D]``, each component damped by the pixel's
    footprint (a Gaussian pre-filter: what a mip-map does) so far surfaces do not alias."""
    phase = points @ texture.frequencies.T + texture.phases / (2 * math.pi)  # [P, K]
    damp = np.exp(-0.5 * (math.pi * footprint[:, None] * np.linalg.norm(texture.frequencies, axis=1)) ** 2)
    value = (np.sin(2 * math.pi * phase) * damp) @ texture.weights
    if texture.checker:
        sharp = np.clip(1.0 / (texture.checker * footprint * 4.0), 0.0, 12.0)
        wave = np.sin(2 * math.pi * texture.checker * points[:, 0]) * np.sin(2 * math.pi * texture.checker * points[:, -1])
        value = value + 0.35 * np.tanh(sharp * wave)[:, None]
    return value


@dataclass(frozen=True)
class _Sphere:
    start: np.ndarray  # centre at frame 0
    velocity: np.ndarray  # per frame, world units, scaled by the speed
    radius: float
    colour: np.ndarray


def _spheres(rng: np.random.Generator) -> list[_Sphere]:
    # a near one moving right, in front of a middle one and towards a far one moving left: within
    # the first 25 frames at either speed each passes in front of another (occlusions between
    # objects, besides every sphere's against the ground and the wall)
    layout = [((-0.6, 0.55, 3.6), (1.3, 0.0, 0.0), 0.55, (0.85, 0.35, 0.25)),
              ((1.2, 0.8, 6.0), (-1.0, 0.0, 0.0), 0.8, (0.3, 0.55, 0.85)),
              ((0.2, 0.4, 4.8), (0.6, 0.0, -0.3), 0.4, (0.4, 0.8, 0.35))]
    return [_Sphere(np.array(c) + rng.uniform(-0.05, 0.05, 3), np.array(v), r, np.array(col))
            for c, v, r, col in layout]


def _rays(width: int, height: int, pitch: float) -> np.ndarray:
    """Ray directions ``[H*W, 3]`` (world, not normalised; their component along the view axis is
    FOCAL)."""
    xs = (np.arange(width) + 0.5) / width - 0.5
    ys = -((np.arange(height) + 0.5) / height - 0.5) * height / width
    xc, yc = np.meshgrid(xs, ys)
    forward = np.array([0.0, -math.sin(pitch), math.cos(pitch)])
    up = np.array([0.0, math.cos(pitch), math.sin(pitch)])
    right = np.array([1.0, 0.0, 0.0])
    return xc.reshape(-1, 1) * right + yc.reshape(-1, 1) * up + FOCAL * forward


def render_frame(frame: int, size: tuple[int, int], texture: str = "heavy", speed: str = "slow",
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One frame: ``(rgb uint8 [H, W, 3], inverse depth float32 [H, W])``; ``size`` is ``(W, H)``."""
    if texture not in TEXTURES:
        raise ValueError(f"texture must be one of {TEXTURES}, got {texture!r}")
    if speed not in SPEEDS:
        raise ValueError(f"speed must be one of {tuple(SPEEDS)}, got {speed!r}")
    width, height = size
    rng = np.random.default_rng([seed, 1])  # geometry and texture drawn apart: both texture levels share the depth
    spheres = _spheres(rng)
    rng = np.random.default_rng([seed, 2])
    textures = [_texture(rng, texture, 2), _texture(rng, texture, 2)] + [_texture(rng, texture, 3) for _ in range(3)]
    travel = SPEEDS[speed] * frame
    origin = np.array([travel, CAMERA_HEIGHT, 0.0])
    rays = _rays(width, height, PITCH + WOBBLE * math.sin(2 * math.pi * travel / WOBBLE_PERIOD))
    length = np.linalg.norm(rays, axis=1)

    hit = np.full(rays.shape[0], np.inf)
    surface = np.full(rays.shape[0], -1)
    down = rays[:, 1] < -1e-9
    t_ground = np.where(down, -CAMERA_HEIGHT / np.where(down, rays[:, 1], -1.0), np.inf)
    t_wall = (WALL_Z - origin[2]) / rays[:, 2]
    for index, t in enumerate((t_ground, t_wall)):
        closer = (t > 0) & (t < hit)
        hit[closer], surface[closer] = t[closer], index
    centres = []
    for index, sphere in enumerate(spheres):
        centre = sphere.start + sphere.velocity * SPEEDS[speed] * frame
        centres.append(centre)
        oc = origin - centre
        b = rays @ oc
        a = length**2
        disc = b**2 - a * (oc @ oc - sphere.radius**2)
        t = np.where(disc > 0, (-b - np.sqrt(np.maximum(disc, 0.0))) / a, np.inf)
        closer = (t > 0) & (t < hit)
        hit[closer], surface[closer] = t[closer], index + 2

    points = origin + hit[:, None] * rays
    colour = np.zeros((rays.shape[0], 3))
    for index in range(len(textures)):
        mask = surface == index
        if not mask.any():
            continue
        p, d, t = points[mask], rays[mask], hit[mask]
        if index == 0:  # ground
            normal = np.array([0.0, 1.0, 0.0])
            coords, base, lit = p[:, [0, 2]], np.array([0.55, 0.5, 0.42]), 0.9
        elif index == 1:  # back wall
            normal = np.array([0.0, 0.0, -1.0])
            coords, base, lit = p[:, [0, 1]], np.array([0.6, 0.62, 0.68]), 0.8
        else:
            sphere = spheres[index - 2]
            normals = (p - centres[index - 2]) / sphere.radius
            coords, base = p - centres[index - 2], sphere.colour
            lit = 0.35 + 0.65 * np.clip(normals @ LIGHT, 0.0, 1.0)[:, None]
            normal = normals
        cosine = np.abs((d * normal).sum(axis=1) if normal.ndim == 2 else d @ normal) / np.linalg.norm(d, axis=1)
        footprint = t * np.linalg.norm(d, axis=1) / width / np.maximum(cosine, 0.15)
        shade = _shade(textures[index], coords, footprint)
        colour[mask] = np.clip(base * (1.0 + shade) * lit, 0.0, 1.0)
    inverse_depth = 1.0 / (hit * FOCAL)  # distance along the view axis = t * (ray . forward) = t * FOCAL
    rgb = np.round(colour * 255).astype(np.uint8).reshape(height, width, 3)
    return rgb, inverse_depth.astype(np.float32).reshape(height, width)


def render_scene(num_frames: int = 48, size: tuple[int, int] = (384, 216), texture: str = "heavy",
                 speed: str = "slow", seed: int = 0, start: int = 0) -> RenderedScene:
    """``num_frames`` consecutive frames from ``start`` of one scene; ``size`` is ``(W, H)``."""
    frames = [render_frame(start + i, size, texture, speed, seed) for i in range(num_frames)]
    return RenderedScene(np.stack([f[0] for f in frames]), np.stack([f[1] for f in frames]))

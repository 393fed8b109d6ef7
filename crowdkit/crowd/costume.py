"""How the crowd looks: the shared white robe and headdress, faces set into it, the mask, the sand.

Everything is drawn once at full resolution as premultiplied RGBA sprite
pyramids (:class:`Sprite`) and blended into a frame by :func:`place_sprite`::

    costume = Costume(face_opening=1.0)
    head = costume.head(photo, masked=True)           # an aligned 250×250 LFW photo in the headdress
    render_figure(photo, face_height=96)               # one costumed person, for the book and tests
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from crowdkit.crowd.scene import FACE_CENTRE_Y, FACE_M, LFW_FACE

#: Face-oval height in pixels in the full-resolution sprites (pyramid level 0).
SPRITE_FACE_PX = 128
CLOTH_RGB = (238, 238, 233)
CORD_RGB = (28, 28, 30)
SHADOW_RGB = (96, 78, 66)
SKIN_RGB = (196, 152, 126)
MASK_RGB = (160, 200, 226)
_LEVELS = 5  # sprite pyramid: face heights 128, 64, 32, 16, 8 px


# --------------------------------------------------------------------------- appearance


def draw_mask(image: np.ndarray) -> np.ndarray:
    """The crowd's light-blue mask, nose to chin, drawn on an aligned 250×250 LFW photo (a copy)."""
    import cv2

    out = image.copy()
    cx, chin = LFW_FACE["cx"], LFW_FACE["chin"]
    top = chin - 63  # over the nose bridge, just below the eyes
    lower = cv2.ellipse2Poly((int(cx), int(chin - 40)), (48, 46), 0, 0, 180, 6)
    upper = np.array([[cx + 48, top + 8], [cx + 22, top], [cx, top - 3], [cx - 22, top], [cx - 48, top + 8]])
    polygon = np.vstack([lower, upper]).astype(np.int32)
    cv2.fillPoly(out, [polygon], MASK_RGB, lineType=cv2.LINE_AA)
    pleat = tuple(int(c * 0.85) for c in MASK_RGB)
    for dy in (14, 28, 42):
        y = int(top + dy)
        cv2.line(out, (int(cx - 44), y), (int(cx + 44), y + 2), pleat, 2, cv2.LINE_AA)
    for side in (-1, 1):  # ear loops, from the mask's corners to the ears
        ear = int(cx + side * 62)
        cv2.line(out, (int(cx + side * 46), int(top + 8)), (ear, int(top - 2)), (235, 240, 245), 2, cv2.LINE_AA)
        cv2.line(out, (int(cx + side * 42), int(chin - 22)), (ear, int(top + 20)), (235, 240, 245), 2, cv2.LINE_AA)
    return out


def _shade(mask: np.ndarray, rgb: tuple[int, int, int], edge_px: float, floor: float = 0.78) -> np.ndarray:
    """Cloth colour darkened toward the edges of ``mask`` (uint8 0/255): a cheap rounded look."""
    import cv2

    distance = cv2.distanceTransform((mask > 0).astype(np.uint8), cv2.DIST_L2, 5)
    light = floor + (1.0 - floor) * np.clip(distance / edge_px, 0.0, 1.0)
    return (light[..., None] * np.array(rgb, np.float32)).astype(np.float32)


def _premultiply(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """(H,W,3) float + (H,W) float in [0,1] → premultiplied RGBA uint8 (H,W,4)."""
    out = np.empty(rgb.shape[:2] + (4,), np.uint8)
    out[..., :3] = np.clip(rgb * alpha[..., None] + 0.5, 0, 255)
    out[..., 3] = np.clip(alpha * 255.0 + 0.5, 0, 255)
    return out


def _pyramid(rgba: np.ndarray) -> list[np.ndarray]:
    import cv2

    levels = [rgba]
    for _ in range(_LEVELS - 1):
        levels.append(cv2.pyrDown(levels[-1]))
    return levels


@dataclass(frozen=True)
class Sprite:
    """A premultiplied RGBA image pyramid with its anchor (the face centre) at level 0."""

    levels: tuple[np.ndarray, ...]
    anchor: tuple[float, float]


class Costume:
    """The shared white robe and headdress, drawn once at full resolution; faces are set into copies."""

    def __init__(self, *, face_opening: float = 1.0) -> None:
        import cv2

        u = float(SPRITE_FACE_PX)
        self.u = u
        self.face_opening = face_opening
        self.face_half = (u * LFW_FACE["half_w"] / LFW_FACE["half_h"] / 2.0, u / 2.0)  # oval half-axes
        # Head sprite: 2u wide, 3u tall, face centre at (u, 1.3u).
        self.head_size = (int(2 * u), int(3 * u))
        self.head_anchor = (u, 1.3 * u)
        w, h = self.head_size
        ax, ay = self.head_anchor
        face_top = ay - u / 2
        hood = np.zeros((h, w), np.uint8)
        top_arc = cv2.ellipse2Poly((int(ax), int(face_top + 0.05 * u)), (int(0.56 * u), int(0.70 * u)), 0, 180, 360, 5)
        sides = np.array([[ax + 0.88 * u, h - 1], [ax - 0.88 * u, h - 1]])
        cv2.fillPoly(hood, [np.vstack([top_arc, sides]).astype(np.int32)], 255, lineType=cv2.LINE_AA)
        rgb = _shade(hood, CLOTH_RGB, 0.10 * u)
        # Folds: soft darker lines from the temples down the drape.
        folds = np.zeros((h, w), np.float32)
        for side in (-1, 1):
            for dx, length in ((0.50, 1.5), (0.70, 1.3)):
                x0 = ax + side * dx * u
                cv2.line(folds, (int(x0), int(ay)), (int(x0 + side * 0.15 * u), int(ay + length * u)), 1.0, 3)
        folds = cv2.GaussianBlur(folds, (0, 0), 0.03 * u)
        rgb *= (1.0 - 0.12 * folds)[..., None]
        cord = np.zeros((h, w), np.uint8)
        cv2.ellipse(cord, (int(ax), int(face_top - 0.17 * u)), (int(0.50 * u), int(0.14 * u)), 0, 0, 360, 255,
                    int(0.055 * u), cv2.LINE_AA)
        cord = (cord.astype(np.float32) / 255.0) * (hood > 0)
        rgb = rgb * (1 - cord[..., None]) + np.array(CORD_RGB, np.float32) * cord[..., None]
        self.hood_rgb = rgb
        self.hood_alpha = hood.astype(np.float32) / 255.0
        self.hood_rgba = _premultiply(rgb, self.hood_alpha)
        back = rgb.copy()
        cv2.line(back, (int(ax), int(face_top + 0.1 * u)), (int(ax), h - 1), (205, 205, 200), int(0.04 * u), cv2.LINE_AA)
        self.back = Sprite(tuple(_pyramid(_premultiply(cv2.GaussianBlur(back, (0, 0), 1.0), self.hood_alpha))),
                           self.head_anchor)
        self.body = self._body()

    def _body(self) -> Sprite:
        """Robe from the shoulders to the feet, with a soft ground shadow; anchor above the sprite."""
        import cv2

        u = self.u
        below = (FACE_CENTRE_Y / FACE_M) * u  # face centre → ground, in sprite px
        w, h = int(3.2 * u), int(below - 0.7 * u + 0.45 * u)
        cx, shoulder = w / 2, 0.0
        ground = below - 0.7 * u
        robe = np.zeros((h, w), np.uint8)
        top = cv2.ellipse2Poly((int(cx), int(shoulder + 0.45 * u)), (int(1.35 * u), int(0.45 * u)), 0, 180, 360, 5)
        hem = np.array([[cx + 1.25 * u, ground], [cx - 1.25 * u, ground]])
        cv2.fillPoly(robe, [np.vstack([top, hem]).astype(np.int32)], 255, lineType=cv2.LINE_AA)
        rgb = _shade(robe, CLOTH_RGB, 0.25 * u, floor=0.80)
        folds = np.zeros((h, w), np.float32)
        for dx in (-0.8, -0.35, 0.3, 0.75):
            cv2.line(folds, (int(cx + dx * u), int(1.2 * u)), (int(cx + dx * 1.15 * u), int(ground)), 1.0, 4)
        for side in (-1, 1):  # arms hanging at the sides
            cv2.line(folds, (int(cx + side * 0.95 * u), int(0.7 * u)), (int(cx + side * 1.0 * u), int(4.3 * u)), 2.0, 5)
        rgb *= (1.0 - 0.10 * cv2.GaussianBlur(folds, (0, 0), 0.05 * u))[..., None]
        alpha = robe.astype(np.float32) / 255.0
        shadow = np.zeros((h, w), np.uint8)
        cv2.ellipse(shadow, (int(cx), int(ground)), (int(1.6 * u), int(0.35 * u)), 0, 0, 360, 255, -1)
        shadow_alpha = cv2.GaussianBlur(shadow.astype(np.float32) / 255.0, (0, 0), 0.15 * u) * 0.35
        shadow_alpha *= 1.0 - alpha
        rgb = rgb * alpha[..., None] + np.array((40, 35, 30), np.float32) * shadow_alpha[..., None]
        total = alpha + shadow_alpha
        rgb = rgb / np.maximum(total, 1e-6)[..., None]
        return Sprite(tuple(_pyramid(_premultiply(rgb, total))), (cx, -0.7 * u))

    def face_oval(self, yaw_deg: float = 0.0) -> tuple[float, float, float, float]:
        """The visible face oval in level-0 head-sprite pixels: centre x, centre y, half-width, half-height."""
        yaw = math.radians(yaw_deg)
        ax, ay = self.head_anchor
        return (ax + math.sin(yaw) * 0.30 * self.u, ay, self.face_half[0] * abs(math.cos(yaw)), self.face_half[1])

    def head(self, photo: np.ndarray | None, *, masked: bool = False, yaw_deg: float = 0.0) -> Sprite:
        """The headdress with ``photo`` (an aligned LFW RGB image) set into its opening.

        ``photo=None`` fills the opening with plain skin colour (the costume alone).
        ``yaw_deg`` narrows and shifts the opening and the face, as a head turning sideways.
        """
        import cv2

        cx, cy, hw, hh = self.face_oval(yaw_deg)
        # Only the region around the opening changes: work there, on a copy of the bare hood.
        margin = 0.12 * self.u
        x0, x1 = int(cx - 1.1 * hw - margin), int(math.ceil(cx + 1.1 * hw + margin))
        y0, y1 = int(cy - 1.07 * hh - margin), int(math.ceil(cy + 1.07 * hh + margin))
        size = (x1 - x0, y1 - y0)
        centre = (int(round(cx - x0)), int(round(cy - y0)))
        rgb = self.hood_rgb[y0:y1, x0:x1]
        # A shaded rim: the cloth's edge folds in around the face.
        rim = np.zeros(size[::-1], np.uint8)
        cv2.ellipse(rim, centre, (int(hw * 1.10) + 1, int(hh * 1.07)), 0, 0, 360, 255, -1, cv2.LINE_AA)
        rim_a = cv2.GaussianBlur(rim.astype(np.float32) / 255.0, (0, 0), 0.03 * self.u)[..., None]
        rgb = rgb * (1 - rim_a) + np.array(SHADOW_RGB, np.float32) * rim_a
        # The face: an LFW oval (chin anchored, scaled by face_opening) mapped onto the sprite oval.
        src_hh = LFW_FACE["half_h"] * self.face_opening
        src_cx, src_cy = LFW_FACE["cx"], LFW_FACE["chin"] - src_hh
        sy = hh / src_hh
        sx = sy * abs(math.cos(math.radians(yaw_deg)))
        if photo is None:
            face = np.empty(size[::-1] + (3,), np.float32)
            face[:] = SKIN_RGB
        else:
            source = draw_mask(photo) if masked else photo
            m = np.array([[sx, 0, cx - x0 - sx * src_cx], [0, sy, cy - y0 - sy * src_cy]], np.float32)
            face = cv2.warpAffine(source, m, size, flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
        oval = np.zeros(size[::-1], np.uint8)
        cv2.ellipse(oval, centre, (max(int(hw), 1), int(hh)), 0, 0, 360, 255, -1, cv2.LINE_AA)
        face_a = cv2.GaussianBlur(oval.astype(np.float32) / 255.0, (0, 0), 0.025 * self.u)
        rgb = rgb * (1 - face_a[..., None]) + face * face_a[..., None]
        image = self.hood_rgba.copy()
        image[y0:y1, x0:x1] = _premultiply(rgb, np.maximum(self.hood_alpha[y0:y1, x0:x1], face_a))
        return Sprite(tuple(_pyramid(image)), self.head_anchor)


def place_sprite(canvas: np.ndarray, owner: np.ndarray | None, sprite: Sprite, centre: tuple[float, float], scale: float,
           roll_deg: float, owner_id: int) -> None:
    """Blend ``sprite`` into ``canvas`` (uint8, H×W×3, in place) with its anchor at ``centre``.

    ``scale`` is relative to level 0; the pyramid level is chosen so the
    remaining warp never shrinks by more than 2 (no aliasing). ``owner``
    (int16 H×W) records which person is on top at each pixel.
    """
    import cv2

    level = int(np.clip(math.floor(-math.log2(max(scale, 1e-6))), 0, _LEVELS - 1))
    image = sprite.levels[level]
    k = scale * (2 ** level)
    ax, ay = sprite.anchor[0] / 2 ** level, sprite.anchor[1] / 2 ** level
    r = math.radians(roll_deg)
    a, b = k * math.cos(r), k * math.sin(r)
    m = np.array([[a, b, 0.0], [-b, a, 0.0]])
    m[:, 2] = np.array(centre) - m[:, :2] @ np.array([ax, ay])
    h, w = image.shape[:2]
    corners = m[:, :2] @ np.array([[0, w, 0, w], [0, 0, h, h]], float) + m[:, 2:3]
    x0 = max(int(math.floor(corners[0].min())), 0)
    y0 = max(int(math.floor(corners[1].min())), 0)
    x1 = min(int(math.ceil(corners[0].max())) + 1, canvas.shape[1])
    y1 = min(int(math.ceil(corners[1].max())) + 1, canvas.shape[0])
    if x1 <= x0 or y1 <= y0:
        return
    m[:, 2] -= (x0, y0)
    warped = cv2.warpAffine(image, m, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    alpha = warped[..., 3]
    if not alpha.any():
        return
    # Premultiplied "over": canvas·(1 − α) + colour, in OpenCV's saturating uint8 arithmetic.
    keep = cv2.cvtColor(255 - alpha, cv2.COLOR_GRAY2RGB)
    region = canvas[y0:y1, x0:x1]
    region[:] = cv2.add(cv2.multiply(region, keep, scale=1.0 / 255.0), cv2.cvtColor(warped, cv2.COLOR_RGBA2RGB))
    if owner is not None:
        owner[y0:y1, x0:x1][alpha > 127] = owner_id


def render_figure(photo: np.ndarray | None, *, face_height: float = 96, face_opening: float = 1.0,
                  masked: bool = False, yaw_deg: float = 0.0, roll_deg: float = 0.0,
                  size: tuple[int, int] | None = None) -> np.ndarray:
    """One costumed person on plain sand: RGB uint8 (height, width, 3); for the book and for tests.

    ``photo`` is an aligned 250×250 LFW image, or ``None`` for the costume with a blank skin-coloured oval.
    """
    costume = Costume(face_opening=face_opening)
    width, height = size or (int(face_height * 3.2), int(face_height * 4.5))
    canvas = np.empty((height, width, 3), np.uint8)
    canvas[:] = (198, 181, 143)
    centre = (width / 2, height * 0.35)
    scale = face_height / SPRITE_FACE_PX
    place_sprite(canvas, None, costume.body, centre, scale, 0.0, 0)
    place_sprite(canvas, None, costume.head(photo, masked=masked, yaw_deg=yaw_deg), centre, scale, roll_deg, 0)
    return canvas


def sand_texture(rng: np.random.Generator, size: int = 1024) -> np.ndarray:
    """A tileable sand texture, RGB uint8 (size, size, 3): noise at several scales around a sand colour.

    The noise is filtered in the frequency domain, so the texture wraps without seams.
    """
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    radius2 = fx ** 2 + fy ** 2
    texture = np.zeros((size, size), np.float64)
    for sigma, weight in ((1.0, 6.0), (4.0, 6.0), (24.0, 10.0), (90.0, 8.0)):
        spectrum = np.fft.rfft2(rng.standard_normal((size, size)))
        noise = np.fft.irfft2(spectrum * np.exp(-2 * (math.pi * sigma) ** 2 * radius2), s=(size, size))
        texture += weight * noise / max(float(noise.std()), 1e-9)
    base = np.array((198, 181, 143), np.float64)
    tint = np.array((1.0, 0.95, 0.85))
    return np.clip(base + texture[..., None] * tint, 0, 255).astype(np.uint8)


"""Safe image decoding: any bytes in, an RGB array or an error value with a reason out.

Every image lxn touches (the prepare job over web datasets, the nightly scan over buckets we do
not control) goes through `decode_image`. Two promises:

* A bad object becomes an `ImageDecodeError(kind, reason)`, never a crashed job. `kind` is one of
  `ERROR_KINDS` (below) so pipelines can count and filter failures; `reason` is a short sentence
  for the humans reading the report ("looks like an HTML page: ...").
* A good but unusual one is converted correctly to (H, W, 3) uint8 RGB, as displayed:

  =====================  =================================================================
  source                 conversion
  =====================  =================================================================
  EXIF orientation 2-8   applied (the same table as `ImageOps.exif_transpose`); `width` and
                         `height` are the displayed size.
  alpha (RGBA, LA, PA,   composited over `BACKGROUND`, opaque white: logos on transparent
  palette or colour-key  backgrounds are drawn for light pages, and white is what a browser
  transparency)          shows them on. Black would erase black logos.
  16-bit grey (I;16)     round(v / 257): 65535 -> 255, 32768 -> 128. (Pillow's own
                         ``convert("L")`` clips everything above 255 to white.)
  16-bit RGB(A) PNG      Pillow has no 16-bit RGB mode: it reads these as 8-bit RGB(A) by
                         keeping the high byte of each sample (v >> 8, at most 1 level below
                         rounding). `mode` then reads "RGB"/"RGBA".
  32-bit int (I)         taken as 16-bit data: clipped to 0..65535, then as I;16.
  float (F)              taken as 0..1 (the float-image convention): clipped, times 255.
  CMYK JPEG              Pillow always reads CMYK JPEGs as Adobe-inverted. That is right for
                         files with Adobe's APP14 marker (Photoshop writes inverted CMYK) but
                         inverts the colours of the rare CMYK JPEG without it, so those are
                         inverted back (as LittleCMS's jpgicc and Wine's decoder do). The
                         conversion is Pillow's naive one; embedded ICC profiles are not used.
  animations             the first frame; `frames` says how many there are.
  =====================  =================================================================

Defences, in order: a byte cap (`max_bytes`), then the pixel count the *header* declares is
checked against `max_pixels` before any pixel is decoded (decompression bombs: a 100-byte PNG
can declare 100k x 100k). That check is per call. Pillow's own `Image.MAX_IMAGE_PIXELS` is
process-global, so this module never changes it and does not rely on it: the file is identified
with Pillow's plugins directly (`_open_header`), which skips Pillow's check in `Image.open`, so
`max_pixels` is the one limit that counts. Pillow still checks its global limit inside some
decoders (GIF frames, WebP); when that fires first it is reported as `too_large` as well.
Only `formats` (`DEFAULT_FORMATS`: the web's raster formats) are opened at all: nothing from a
foreign bucket reaches Pillow's rarer plugins (EPS, for one, runs Ghostscript).

Truncated files are errors (`truncated`): `ImageFile.LOAD_TRUNCATED_IMAGES` is never set. It is
process-global; if other code in the process sets it, Pillow grey-fills truncated images and
they can no longer be told apart here.

Thread and process safety: each call works on its own buffer and image; the module keeps no
mutable state. (Pillow registers its plugins lazily on first use, as `Image.open` does.)

What is never converted into an error value: `MemoryError`, `KeyboardInterrupt`, `SystemExit`
and any other `BaseException` that is not an `Exception`. They mean the process, not the image,
is in trouble; turning them into a "bad image" row would hide that and keep a dying worker busy.
They propagate (from `decode_image`, `safe_decode` and `classify_error` alike), so the worker
fails loudly and the scheduler can retry it; `max_pixels` is what keeps honest images from
getting there.
"""

from __future__ import annotations

import io
import re
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageChops, UnidentifiedImageError

from lxn import svg

__all__ = [
    "BACKGROUND",
    "DEFAULT_FORMATS",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_PIXELS",
    "ERROR_KINDS",
    "FILE_EXTENSIONS",
    "DecodedImage",
    "ImageDecodeError",
    "classify_error",
    "decode_image",
    "encode_jpeg",
    "safe_decode",
]

# What `ImageDecodeError.kind` can be. A pipeline's status column takes these values (or "ok").
ERROR_KINDS: dict[str, str] = {
    "empty": "no bytes at all (a zero-length object or a null)",
    "not_an_image": "bytes of something else: HTML, text, JSON, XML, PDF, an archive, zeros, noise",
    "unsupported": "an image, but in a format or mode this decoder does not read (PSD, JPEG XL...)",
    "corrupt": "an image whose header or data is broken; also any unexpected decoder failure",
    "truncated": "an image whose data ends early (a partial download or upload)",
    "too_large": "more bytes than max_bytes, or a header declaring more pixels than max_pixels",
}

# 64 M pixels (8000 x 8000) covers any camera frame, and stays under Pillow's own warning
# threshold (~89 M). Its RGB array is 192 MB; decoding peaks at about twice that.
DEFAULT_MAX_PIXELS = 64_000_000
DEFAULT_MAX_BYTES = 64 * 1024 * 1024

# The web's raster formats, phones' HEIC (pillow-heif) and SVG (rasterised by lxn.svg). Pillow's
# JPEG reader also returns MPO (multi-picture JPEG from cameras) files, reported as format "MPO".
# Formats this Pillow build cannot read are skipped.
DEFAULT_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "AVIF", "HEIF", "SVG")

# The file names these formats go by: what the scan lists and prepare's readers take by default.
FILE_EXTENSIONS: tuple[str, ...] = ("jpg", "jpeg", "png", "gif", "webp", "bmp", "tif", "tiff", "avif", "heic", "heif",
                                    "svg")

# Alpha is composited over this colour (see the module docstring for why white).
BACKGROUND: tuple[int, int, int] = (255, 255, 255)

_ORIENTATION_TAG = 0x0112
# EXIF orientation -> the transpose that displays it; the table of ImageOps.exif_transpose.
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_JPEG_FORMATS = frozenset({"JPEG", "MPO"})

# Exceptions that say the process is in trouble, not the image: never turned into error values.
_FATAL = (MemoryError,)


class ImageDecodeError(ValueError):
    """An image that cannot be decoded: `kind` (one of `ERROR_KINDS`) and a short `reason`."""

    def __init__(self, kind: str, reason: str) -> None:
        if kind not in ERROR_KINDS:
            raise ValueError(f"unknown error kind {kind!r}; known: {', '.join(ERROR_KINDS)}")
        super().__init__(f"{kind}: {reason}")
        self.kind = kind
        self.reason = reason

    def __reduce__(self):  # pickles as (kind, reason), so it survives Ray's task boundaries
        return (type(self), (self.kind, self.reason))


@dataclass(frozen=True, eq=False)
class DecodedImage:
    """A decoded image. `pixels` is read-only (copy it to modify); the rest describes the source.

    `width`/`height` are the source's displayed size (EXIF orientation applied). They equal the
    pixel array's size unless `decode_image` was given a `target_size` and decoded a JPEG at a
    reduced scale, or drew an SVG smaller than it declares: then `pixels` is smaller and
    `decoded_size` says by how much.
    """

    pixels: np.ndarray = field(repr=False)  # (H, W, 3) uint8 RGB
    width: int
    height: int
    format: str  # Pillow's name: "JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "MPO", "AVIF", "HEIF"; or "SVG"
    mode: str  # the source's Pillow mode: "RGB", "CMYK", "P", "I;16", "1", ...
    frames: int  # 1 unless animated (or multi-page); the first frame is the one decoded

    @property
    def decoded_size(self) -> tuple[int, int]:
        """(width, height) of `pixels`."""
        return self.pixels.shape[1], self.pixels.shape[0]


def decode_image(
    data: bytes | bytearray | memoryview | None,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
    target_size: int | tuple[int, int] | None = None,
    formats: Sequence[str] = DEFAULT_FORMATS,
) -> DecodedImage:
    """Decode `data` to RGB, or raise `ImageDecodeError` saying what it is instead.

    max_pixels: cap on the width x height the header declares, checked before decoding.
    max_bytes: cap on len(data); None for no cap.
    target_size: (width, height), or one side for a square, that the caller will resize to.
        A JPEG is then decoded at the smallest of scales 1/2, 1/4, 1/8 that is still at least
        that large on both sides: libjpeg scales inside the DCT, so less is decoded and nothing
        is resized here (measured: 1024x768 at 1/2 about 1.5x faster; 4032x3024 at 1/8 about
        9x). An SVG is drawn at the smallest size covering it (never above its declared size).
        Other formats decode at full size. `width`/`height` stay the original's.
    formats: Pillow format names to accept; anything else is `unsupported` or `not_an_image`.
    """
    if data is None or len(data) == 0:
        raise ImageDecodeError("empty", "the object has no bytes")
    if max_pixels < 1:
        raise ValueError(f"max_pixels must be positive, got {max_pixels}")
    # Argument errors are the caller's bug: raised as they are, before anything is caught.
    size = _as_size(target_size)
    accepted = _as_formats(formats)
    if max_bytes is not None and len(data) > max_bytes:
        raise ImageDecodeError("too_large", f"{len(data):,} bytes, above the limit of {max_bytes:,} bytes")
    data = bytes(data)
    try:
        return _decode(data, max_pixels=max_pixels, target_size=size, formats=accepted)
    except (ImageDecodeError, *_FATAL):
        raise
    except Exception as exc:
        raise classify_error(exc) from exc


def safe_decode(
    data: bytes | bytearray | memoryview | None, **kwargs
) -> tuple[DecodedImage | None, str | None, str | None]:
    """`decode_image` for batch pipelines: (image, None, None) or (None, kind, reason).

    Never raises for a bad image: `decode_image` already turns every failure of the bytes,
    expected or not, into an `ImageDecodeError`. What still raises is not about the image: bad
    keyword values (ValueError, TypeError: the caller's bug, which must not become a million
    "corrupt" rows) and the process-level exceptions listed in the module docstring.
    """
    try:
        return decode_image(data, **kwargs), None, None
    except ImageDecodeError as exc:
        return None, exc.kind, exc.reason


def classify_error(exc: BaseException) -> ImageDecodeError:
    """Map any exception raised while decoding to an `ImageDecodeError`.

    An `ImageDecodeError` is returned as it is; Pillow's decompression-bomb error is `too_large`;
    errors that mean the data ends early are `truncated`; a missing decoder or an impossible mode
    conversion is `unsupported`; everything else is `corrupt`, with the exception's type and
    message as the reason. `MemoryError` and non-`Exception` exceptions (KeyboardInterrupt,
    SystemExit) are re-raised: they are never an image's fault.
    """
    if isinstance(exc, ImageDecodeError):
        return exc
    if isinstance(exc, _FATAL) or not isinstance(exc, Exception):
        raise exc
    message = _short(str(exc)) or type(exc).__name__
    described = _describe(exc)
    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return ImageDecodeError("too_large", f"over Pillow's process-wide pixel limit: {message}")
    if isinstance(exc, UnidentifiedImageError):
        return ImageDecodeError("not_an_image", "no image format recognises these bytes")
    lowered = message.lower()
    if isinstance(exc, EOFError) or any(s in lowered for s in _TRUNCATION_MESSAGES):
        return ImageDecodeError("truncated", f"the data ends early ({described})")
    if any(s in lowered for s in _UNSUPPORTED_MESSAGES):
        return ImageDecodeError("unsupported", message)
    return ImageDecodeError("corrupt", f"decoding failed ({described})")


# Pillow reports causes only in messages; these are its words for "the data ran out" ...
_TRUNCATION_MESSAGES = ("truncated", "premature end", "unexpected end", "unpack requires a buffer", "not enough data")
# ... and for "this build or this converter cannot do that".
_UNSUPPORTED_MESSAGES = ("not available", "not supported", "unsupported", "unknown raw mode", "illegal conversion")


def encode_jpeg(pixels: np.ndarray, *, max_side: int | None = None, size: tuple[int, int] | None = None,
                quality: int = 90) -> bytes:
    """JPEG bytes of an (H, W, 3) uint8 RGB array, shrunk so its longer side is at most `max_side`,
    or to exactly `size` (width, height).

    With `max_side` the aspect ratio is kept (each side rounded, at least 1 pixel) and images are
    never enlarged. Shrinking is Lanczos with `reducing_gap=3` (a box reduction by an integer
    factor first, then Lanczos over the rest: as sharp as a full Lanczos and several times faster
    on big images).
    """
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3 or 0 in pixels.shape:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB array, got {pixels.dtype} of shape {pixels.shape}")
    if max_side is not None and max_side < 1:
        raise ValueError(f"max_side must be positive or None, got {max_side}")
    if size is not None and (max_side is not None or len(size) != 2 or min(size) < 1):
        raise ValueError(f"size must be a positive (width, height), without max_side; got {size}")
    if not 1 <= quality <= 95:  # libjpeg's own advice: above 95 the file grows for nothing
        raise ValueError(f"quality must be in 1..95, got {quality}")
    image = Image.fromarray(pixels)
    height, width = pixels.shape[:2]
    if max_side is not None and max(width, height) > max_side:
        scale = max_side / max(width, height)
        size = (max(1, min(max_side, round(width * scale))), max(1, min(max_side, round(height * scale))))
    if size is not None and tuple(size) != (width, height):
        image = image.resize(tuple(size), Image.Resampling.LANCZOS, reducing_gap=3.0)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality, optimize=True)
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------
# Decoding, step by step.


def _decode(
    data: bytes, *, max_pixels: int, target_size: tuple[int, int] | None, formats: Sequence[str]
) -> DecodedImage:
    if "SVG" in formats and _signature(data) is None:
        text = _as_text(data[:4096])
        if text is not None and svg.looks_like_svg(text):
            return _decode_svg(data, max_pixels=max_pixels, target_size=target_size)
    try:
        image = _open_header(io.BytesIO(data), formats)
    except (ImageDecodeError, *_FATAL):
        raise
    except Exception as exc:  # a plugin recognised the signature, then choked on the header
        raise _failure(data, exc) from exc
    if image is None:
        raise _unidentified(data, formats)

    width, height = image.size
    if width < 1 or height < 1:
        raise ImageDecodeError("corrupt", f"the {image.format} header declares an empty {width}x{height} image")
    if width * height > max_pixels:
        raise ImageDecodeError(
            "too_large",
            f"the {image.format} header declares {width}x{height} = {width * height:,} pixels, "
            f"above the limit of {max_pixels:,}",
        )
    try:
        # For GIF this walks every frame header (not the pixels); a cut-off animation fails here.
        # n_frames leaves the image on the frame it was on: the first.
        frames = int(getattr(image, "n_frames", 1))
        if target_size is not None and image.format in _JPEG_FORMATS:
            # JPEG keeps EXIF in its header, so the orientation is known before any pixel is read.
            box = target_size[::-1] if _orientation(image) in (5, 6, 7, 8) else target_size
            image.draft(None, box)
        image.load()
        rgb = _to_rgb(image)
        orientation = _orientation(image)
        if orientation in _TRANSPOSE:
            rgb = rgb.transpose(_TRANSPOSE[orientation])
            if orientation >= 5:
                width, height = height, width
        pixels = np.asarray(rgb)  # read-only view of Pillow's bytes: no extra copy
    except (ImageDecodeError, *_FATAL):
        raise
    except Exception as exc:
        raise _failure(data, exc) from exc
    return DecodedImage(pixels, width, height, image.format, image.mode, frames)


def _decode_svg(data: bytes, *, max_pixels: int, target_size: tuple[int, int] | None) -> DecodedImage:
    """An SVG drawn by `lxn.svg.rasterise`, its alpha composited like any other image's."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("utf-16") if data.startswith((b"\xff\xfe", b"\xfe\xff")) else data.decode("latin-1")
    try:
        rgba, (width, height) = svg.rasterise(text, max_pixels=max_pixels, target_size=target_size)
    except OverflowError as exc:
        raise ImageDecodeError("too_large", str(exc)) from None
    except PermissionError as exc:
        raise ImageDecodeError("unsupported", f"an SVG that {exc}") from None
    except ValueError as exc:  # resvg's parse and render failures
        raise ImageDecodeError("corrupt", f"the SVG cannot be drawn ({_describe(exc)})") from None
    rgb = _to_rgb(Image.fromarray(rgba, "RGBA"))
    return DecodedImage(np.asarray(rgb), width, height, "SVG", "RGBA", 1)


def _heif_plugin() -> None:
    """Register pillow-heif's HEIF reader with Pillow, once per process (it applies the image's
    rotation itself and leaves EXIF orientation 1, so nothing is turned twice)."""
    if "HEIF" not in Image.OPEN:
        try:
            import pillow_heif
        except ImportError:  # without it HEIC stays `unsupported`, named as such
            return
        pillow_heif.register_heif_opener(thumbnails=False)


def _open_header(fp: io.BytesIO, formats: Sequence[str]) -> Image.Image | None:
    """Identify the image and read its header, like `Image.open(fp, formats=formats)` minus the
    check against Pillow's process-global MAX_IMAGE_PIXELS (the caller checks its own cap).

    Pillow's registry (`Image.OPEN`: name -> (factory, accept)) is its public plugin mechanism
    (`Image.register_open`); the loop mirrors Image.open's. None when no format accepts the bytes.
    """
    Image.init()  # registers every plugin once per process (a no-op afterwards), as Image.open does
    if "HEIF" in formats:
        _heif_plugin()
    prefix = fp.read(16)
    for name in formats:
        entry = Image.OPEN.get(name)
        if entry is None:  # this Pillow build cannot read it (e.g. AVIF before Pillow 11.2)
            continue
        factory, accept = entry
        verdict = accept(prefix) if accept is not None else True
        if not verdict or isinstance(verdict, str):  # a str is Pillow's "close, but no" message
            continue
        fp.seek(0)
        try:
            return factory(fp, "")
        except (SyntaxError, IndexError, TypeError, struct.error):
            continue  # Image.open's rule: these mean "not this format after all"; try the next
    return None


def _to_rgb(image: Image.Image) -> Image.Image:
    """The loaded `image` as an RGB image, converted as the module docstring's table says."""
    mode = image.mode
    if mode in _SIXTEEN_BIT_MODES or mode == "I":
        values = np.clip(np.asarray(image), 0, 65535).astype(np.uint32)
        # round(v / 257) in integers: 65535 -> 255, 32768 -> 128, 257 * k -> k.
        return Image.fromarray(((values + 128) // 257).astype(np.uint8)).convert("RGB")
    if mode == "F":
        values = np.nan_to_num(np.asarray(image, dtype=np.float32), nan=0.0, posinf=1.0, neginf=0.0)
        return Image.fromarray(np.rint(np.clip(values, 0.0, 1.0) * 255).astype(np.uint8)).convert("RGB")
    if mode == "CMYK" and image.format in _JPEG_FORMATS and "adobe" not in image.info:
        image = ImageChops.invert(image)  # undo Pillow's Adobe assumption (see module docstring)
    if mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")  # palette/colour-key transparency becomes alpha here
        canvas = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
        canvas.alpha_composite(rgba)
        return canvas.convert("RGB")
    if mode == "RGB":
        return image  # convert() would copy it
    # Everything else (1, L, P, CMYK, YCbCr, LAB, HSV, ...) is Pillow's conversion. A mode it could
    # not convert would raise "illegal conversion", which classify_error reports as `unsupported`.
    return image.convert("RGB")


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation (1-8), 1 when absent or unreadable: a broken EXIF block must not
    cost an otherwise good image its pixels."""
    try:
        value = image.getexif().get(_ORIENTATION_TAG, 1)
    except _FATAL:
        raise
    except Exception:
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _as_formats(formats: Sequence[str]) -> tuple[str, ...]:
    if isinstance(formats, str) or not isinstance(formats, (tuple, list, set, frozenset)) or not formats:
        raise ValueError(f"formats must be a non-empty collection of Pillow format names, got {formats!r}")
    if not all(isinstance(name, str) for name in formats):
        raise ValueError(f"formats must be Pillow format names (strings), got {formats!r}")
    return tuple(name.upper() for name in formats)


def _as_size(target_size: int | tuple[int, int] | None) -> tuple[int, int] | None:
    if target_size is None:
        return None
    size = (target_size, target_size) if isinstance(target_size, int) else target_size
    if not (isinstance(size, (tuple, list)) and len(size) == 2 and all(isinstance(s, int) and s >= 1 for s in size)):
        raise ValueError(f"target_size must be a positive int or (width, height), got {target_size!r}")
    return int(size[0]), int(size[1])


# ---------------------------------------------------------------------------------------------
# Naming failures: what the bytes look like, and whether the data ends early.

# Signatures of the formats we read: (format, test).
_IMAGE_SIGNATURES: tuple[tuple[str, Callable[[bytes], bool]], ...] = (
    ("JPEG", lambda d: d[:3] == b"\xff\xd8\xff"),
    ("PNG", lambda d: d[:8] == b"\x89PNG\r\n\x1a\n"),
    ("GIF", lambda d: d[:6] in (b"GIF87a", b"GIF89a")),
    ("WEBP", lambda d: d[:4] == b"RIFF" and d[8:12] == b"WEBP"),
    ("BMP", lambda d: d[:2] == b"BM"),
    ("TIFF", lambda d: d[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")),
    ("AVIF", lambda d: d[4:8] == b"ftyp" and d[8:12] in (b"avif", b"avis")),
    ("HEIF", lambda d: d[4:8] == b"ftyp" and d[8:12] in (b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1")),
)
# Images we recognise but do not read, and other things commonly found in buckets.
_UNSUPPORTED_SIGNATURES: tuple[tuple[Callable[[bytes], bool], str], ...] = (
    (lambda d: d[:4] == b"8BPS", "a Photoshop (PSD) document"),
    (lambda d: d[:4] == b"%!PS" or d[:4] == b"\xc5\xd0\xd3\xc6", "a PostScript/EPS file"),
    (lambda d: d[:2] == b"\xff\x0a" or d[:12] == b"\x00\x00\x00\x0cJXL \r\n\x87\n", "a JPEG XL image"),
    (lambda d: d[:12] == b"\x00\x00\x00\x0cjP  \r\n\x87\n" or d[:4] == b"\xff\x4f\xff\x51", "a JPEG 2000 image"),
    (lambda d: d[:4] in (b"\x00\x00\x01\x00", b"\x00\x00\x02\x00"), "a Windows icon (ICO/CUR)"),
)
_OTHER_SIGNATURES: tuple[tuple[Callable[[bytes], bool], str], ...] = (
    (lambda d: d[:5] == b"%PDF-", "a PDF document"),
    (lambda d: d[:4] == b"PK\x03\x04", "a ZIP archive (or an Office document)"),
    (lambda d: d[:2] == b"\x1f\x8b", "gzip-compressed data"),
    (lambda d: d[4:8] == b"ftyp", "an MP4/QuickTime video"),
    (lambda d: d[:4] == b"\x1a\x45\xdf\xa3", "a WebM/Matroska video"),
    (lambda d: d[:4] == b"RIFF" and d[8:12] in (b"WAVE", b"AVI "), "a RIFF audio or video file"),
    (lambda d: d[:3] == b"ID3", "an MP3 audio file"),
)


def _unidentified(data: bytes, formats: Sequence[str]) -> ImageDecodeError:
    """The error for bytes no allowed format accepted: say what they look like."""
    fmt = _signature(data)
    if fmt is not None:
        if fmt not in formats:
            return ImageDecodeError("unsupported", f"a {fmt} image, and {fmt} is not among the accepted formats")
        if fmt not in Image.OPEN:
            return ImageDecodeError("unsupported", f"a {fmt} image, and this Pillow build cannot read {fmt}")
        short = _ends_early(fmt, data)
        return ImageDecodeError(
            "truncated" if short else "corrupt",
            f"starts like a {fmt} image but its header cannot be read"
            + (" (the data ends early)" if short else ""),
        )
    for test, what in _UNSUPPORTED_SIGNATURES:
        if test(data):
            return ImageDecodeError("unsupported", f"{what}, a format this decoder does not read")
    for test, what in _OTHER_SIGNATURES:
        if test(data):
            return ImageDecodeError("not_an_image", f"looks like {what}")
    if not data.strip(b"\x00"):
        return ImageDecodeError("not_an_image", f"all {len(data):,} bytes are zero (a placeholder or a failed write)")
    text = _as_text(data[:4096])
    if text is not None:
        return _text_error(text)
    return ImageDecodeError("not_an_image", f"no known image signature (starts with {data[:8].hex(' ')})")


def _failure(data: bytes, exc: Exception) -> ImageDecodeError:
    """`classify_error`, corrected by the container: a JPEG without its end-of-image marker, a
    GIF without its trailer, a PNG without IEND or a WebP shorter than its RIFF size is cut off,
    whatever the decoder's message blamed."""
    error = classify_error(exc)
    fmt = _signature(data)
    if fmt is not None and (error.kind == "truncated" or (error.kind == "corrupt" and _ends_early(fmt, data))):
        return ImageDecodeError("truncated", f"the {fmt} data ends early ({_describe(exc)})")
    return error


def _signature(data: bytes) -> str | None:
    for fmt, test in _IMAGE_SIGNATURES:
        if test(data):
            return fmt
    return None


def _ends_early(fmt: str, data: bytes) -> bool:
    """Whether the container says the data stops before its end (False when it cannot tell).
    JPEG, GIF and PNG end with a marker (EOI, the trailer, IEND; zero padding after it is
    tolerated); WebP and BMP declare their size up front."""
    if fmt == "JPEG":
        return not data.rstrip(b"\x00").endswith(b"\xff\xd9")
    if fmt == "PNG":
        return b"IEND" not in data[-32:]
    if fmt == "GIF":
        return not data.rstrip(b"\x00").endswith(b";")
    if fmt == "WEBP":  # RIFF: the size of what follows the first 8 bytes
        return len(data) < 8 + int.from_bytes(data[4:8], "little")
    if fmt == "BMP":  # the file header starts with the file's size
        return len(data) < int.from_bytes(data[2:6], "little")
    return False  # TIFF, AVIF and HEIF: no cheap tell


def _as_text(head: bytes) -> str | None:
    """`head` as text when it reads as text (UTF-16 with a BOM, UTF-8, or Latin-1 with next to
    no control characters), else None."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = head[: len(head) // 2 * 2].decode("utf-16", errors="replace")
    elif b"\x00" in head:
        return None
    else:
        try:
            text = head.decode("utf-8")
        except UnicodeDecodeError as exc:
            # A character cut at the end of `head` is still UTF-8; anything else is read as Latin-1.
            text = head[: exc.start].decode("utf-8") if exc.start >= len(head) - 3 else head.decode("latin-1")
    # C0 and C1 control characters (bar whitespace) are what binary data looks like as Latin-1.
    control = sum(1 for ch in text if (ord(ch) < 32 or 127 <= ord(ch) < 160) and ch not in "\t\n\r\f")
    return text if text.strip() and control <= len(text) // 100 else None


def _text_error(text: str) -> ImageDecodeError:
    body = text.lstrip("\ufeff \t\r\n")
    head = body[:1024].lower()
    # The quoted start says more without the XML declaration (an S3 error: "<Error><Code>...").
    snippet = _short(" ".join(re.sub(r"^<\?xml[^>]*>", "", body).split()), limit=60)
    if "<svg" in head:
        return ImageDecodeError("unsupported", "an SVG vector image, and SVG is not among the accepted formats")
    if head.startswith(("<!doctype html", "<html")) or re.search(r"<(head|body|title|meta|script)\b", head):
        return ImageDecodeError("not_an_image", f"looks like an HTML page: {snippet!r}")
    if head.startswith("<"):
        return ImageDecodeError("not_an_image", f"looks like XML: {snippet!r}")
    if head.startswith(("{", "[")):
        return ImageDecodeError("not_an_image", f"looks like JSON: {snippet!r}")
    return ImageDecodeError("not_an_image", f"looks like plain text: {snippet!r}")


def _describe(exc: BaseException) -> str:
    message = _short(str(exc))
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _short(message: str, limit: int = 200) -> str:
    message = message.strip()
    return message if len(message) <= limit else message[: limit - 3] + "..."

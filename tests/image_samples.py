"""One sample of every kind of object an image pipeline must survive, built in memory.

`image_kinds()` maps a name to a `Sample`: the bytes, the expected outcome of `decode_image`
(`expected_kind` None for a good image, else the `ImageDecodeError.kind`), the expected displayed
size of good images, and a file name as a bucket would hold it (some misleading on purpose: an
HTML error page saved as `.jpg` is what a failed crawl leaves behind).

Shared by the image unit tests and the scan tests: put the samples in a bucket, run the scan, and
expect one row per sample with these outcomes. Everything is generated with Pillow/numpy from
fixed seeds; the decompression bombs are a few hundred bytes of hand-made header.
"""

from __future__ import annotations

import functools
import io
import struct
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image, features

__all__ = [
    "Sample",
    "image_kinds",
    "ok_kinds",
    "error_kinds",
    "QUADRANT_COLOURS",
    "quadrant_image",
    "encode",
    "exif_jpeg",
    "png_bytes",
    "strip_jpeg_segments",
    "set_jpeg_size",
]


@dataclass(frozen=True)
class Sample:
    data: bytes
    expected_kind: str | None  # None: decodes; else the ImageDecodeError kind
    expected_size: tuple[int, int] | None  # (width, height) as displayed, for good images
    filename: str  # how it would be named in a bucket (the extension may lie)
    expected_format: str | None = None  # Pillow's format name, for good images
    expected_mode: str | None = None  # the source mode decode_image reports, for good images
    note: str = ""


# Colours of the four quadrants of `quadrant_image`: top-left, top-right, bottom-left, bottom-right.
QUADRANT_COLOURS = {
    "tl": (255, 0, 0),
    "tr": (0, 255, 0),
    "bl": (0, 0, 255),
    "br": (255, 255, 0),
}


def quadrant_image(width: int = 64, height: int = 48) -> Image.Image:
    """An RGB image of four solid quadrants (QUADRANT_COLOURS): JPEG keeps block interiors close,
    and any flip or rotation moves a known colour to a known corner."""
    pixels = np.zeros((height, width, 3), np.uint8)
    h, w = height // 2, width // 2
    pixels[:h, :w] = QUADRANT_COLOURS["tl"]
    pixels[:h, w:] = QUADRANT_COLOURS["tr"]
    pixels[h:, :w] = QUADRANT_COLOURS["bl"]
    pixels[h:, w:] = QUADRANT_COLOURS["br"]
    return Image.fromarray(pixels)


def encode(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def exif_jpeg(orientation: int, width: int = 64, height: int = 48) -> bytes:
    """A quadrant JPEG stored as width x height, tagged with EXIF `orientation`."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(quadrant_image(width, height), "JPEG", quality=95, exif=exif)


def png_bytes(width: int, height: int, bit_depth: int, colour_type: int, rows: bytes = b"") -> bytes:
    """A PNG written chunk by chunk, so headers can say things Pillow would never write: 16-bit
    RGB samples, or a 100k x 100k image. `rows` is the raw scanline data (each row prefixed with
    its filter byte); empty for a header-only file."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def _jpeg_segments(data: bytes):
    """(start, end, marker) of each header segment of a JPEG, up to the start of scan."""
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        end = pos + 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
        yield pos, end, marker
        if marker == 0xDA:  # start of scan: entropy-coded data follows
            return
        pos = end


def strip_jpeg_segments(data: bytes, marker: int) -> bytes:
    """The JPEG without its header segments of type `marker` (e.g. 0xEE, Adobe's APP14)."""
    out, last = [data[:2]], 2
    for start, end, m in _jpeg_segments(data):
        if m == marker:
            out.append(data[last:start])
            last = end
    out.append(data[last:])
    return b"".join(out)


def set_jpeg_size(data: bytes, width: int, height: int) -> bytes:
    """The JPEG with its frame header (SOF0) claiming width x height."""
    for start, _, m in _jpeg_segments(data):
        if m == 0xC0:  # SOF0: length(2) precision(1) height(2) width(2)
            return data[: start + 5] + struct.pack(">HH", height, width) + data[start + 9 :]
    raise ValueError("no baseline SOF0 segment")


def _cmyk_quadrants(width: int = 32, height: int = 16) -> np.ndarray:
    """CMYK values of pure cyan, magenta, yellow and black quadrants."""
    cmyk = np.zeros((height, width, 4), np.uint8)
    h, w = height // 2, width // 2
    cmyk[:h, :w, 0] = 255  # cyan -> RGB (0, 255, 255)
    cmyk[:h, w:, 1] = 255  # magenta -> (255, 0, 255)
    cmyk[h:, :w, 2] = 255  # yellow -> (255, 255, 0)
    cmyk[h:, w:, 3] = 255  # black -> (0, 0, 0)
    return cmyk


def _frames(size: tuple[int, int]) -> list[Image.Image]:
    return [Image.new("RGB", size, colour) for colour in [(255, 0, 0), (0, 255, 0), (0, 0, 255)]]


def quadrant_svg(size: str = 'width="64" height="48"') -> str:
    """The quadrant image as an SVG: four rects in QUADRANT_COLOURS on a 64 x 48 viewBox."""
    rects = "".join(f'<rect x="{x}" y="{y}" width="32" height="24" fill="rgb{QUADRANT_COLOURS[k]}"/>'
                    for k, (x, y) in {"tl": (0, 0), "tr": (32, 0), "bl": (0, 24), "br": (32, 24)}.items())
    return f'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" {size} viewBox="0 0 64 48">{rects}</svg>'


def heic_bytes(image: Image.Image, orientation: int = 1) -> bytes:
    """`image` encoded as HEIC by libheif (pillow-heif), with an EXIF orientation if not 1."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    extra = {}
    if orientation != 1:
        exif = Image.Exif()
        exif[0x0112] = orientation
        extra["exif"] = exif.tobytes()
    return encode(image, "HEIF", quality=95, **extra)


def _html() -> bytes:
    return (
        b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head>\n"
        b"<body><h1>Not Found</h1><p>The requested URL was not found on this server.</p></body></html>\n"
    )


@functools.cache
def _build() -> dict[str, Sample]:
    rng = np.random.default_rng(20240611)
    photo = quadrant_image(64, 48)
    jpeg = encode(photo, "JPEG", quality=95)
    png = encode(photo, "PNG")
    # Noise compresses badly, so most of these files is pixel data: cuts and corruption in the
    # middle land in the image data, as in a real partial download, not in the header.
    noisy = Image.fromarray(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8))
    noisy_jpeg, noisy_png = encode(noisy, "JPEG", quality=90), encode(noisy, "PNG")
    samples: dict[str, Sample] = {}

    def ok(name, data, size, filename, fmt, mode, note=""):
        samples[name] = Sample(data, None, size, filename, fmt, mode, note)

    def bad(name, data, kind, filename, note=""):
        samples[name] = Sample(data, kind, None, filename, note=note)

    # ---- good images ------------------------------------------------------------------------
    ok("rgb_jpeg", jpeg, (64, 48), "photos/quadrants.jpg", "JPEG", "RGB")
    ok("rgb_png", png, (64, 48), "logos/quadrants.png", "PNG", "RGB")
    cmyk = _cmyk_quadrants()
    ok("cmyk_jpeg", encode(Image.fromarray(cmyk, "CMYK"), "JPEG", quality=95), (32, 16), "print/cmyk.jpg",
       "JPEG", "CMYK", "Adobe APP14 marker, inverted CMYK (as Photoshop and Pillow write it)")
    # Pillow always writes inverted CMYK; saving the inverse and dropping the Adobe marker gives a
    # file that stores plain CMYK, as non-Adobe writers do.
    plain = strip_jpeg_segments(encode(Image.fromarray(255 - cmyk, "CMYK"), "JPEG", quality=95), 0xEE)
    ok("cmyk_jpeg_no_adobe", plain, (32, 16), "print/cmyk_plain.jpg", "JPEG", "CMYK",
       "no Adobe marker: plain (non-inverted) CMYK")
    palette = Image.fromarray(rng.integers(0, 4, (20, 30), dtype=np.uint8), "P")
    palette.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0])
    ok("palette_png", encode(palette, "PNG"), (30, 20), "logos/palette.png", "PNG", "P")
    ok("palette_png_transparent", encode(palette, "PNG", transparency=2), (30, 20), "logos/palette_alpha.png",
       "PNG", "P", "palette index 2 (blue) fully transparent")
    rgba = np.zeros((16, 24, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 255, 128
    ok("rgba_png", encode(Image.fromarray(rgba), "PNG"), (24, 16), "logos/rgba.png", "PNG", "RGBA",
       "red at half opacity")
    la = np.zeros((16, 24, 2), np.uint8)
    la[:, :12] = (100, 255)
    ok("la_png", encode(Image.fromarray(la, "LA"), "PNG"), (24, 16), "logos/la.png", "PNG", "LA",
       "left half grey 100 opaque, right half transparent")
    gray16 = np.array([[0, 257, 32768, 60000, 65535]] * 3, np.uint16)
    ok("gray16_png", encode(Image.fromarray(gray16), "PNG"), (5, 3), "scans/depth16.png", "PNG", "I;16")
    rgb16 = np.array([[[65535, 32768, 0], [257 * 10, 257 * 200, 65535]]], ">u2")
    rows = b"".join(b"\x00" + row.tobytes() for row in rgb16)
    ok("rgb16_png", png_bytes(2, 1, 16, 2, rows), (2, 1), "scans/rgb16.png", "PNG", "RGB",
       "16-bit RGB: Pillow reads it as 8-bit RGB")
    ok("bilevel_png", encode(Image.fromarray(rng.random((20, 30)) > 0.5), "PNG"), (30, 20), "fax/bilevel.png",
       "PNG", "1")
    gray = Image.fromarray(np.tile(np.arange(0, 256, 4, dtype=np.uint8), (16, 1)))
    ok("gray_jpeg", encode(gray, "JPEG", quality=95), (64, 16), "photos/gray.jpg", "JPEG", "L")
    ok("exif_rotated_jpeg", exif_jpeg(6), (48, 64), "photos/phone.jpg", "JPEG", "RGB",
       "stored 64x48 with EXIF orientation 6: displayed 48x64, stored top-left at the top-right")
    size = (40, 30)
    first, *rest = _frames(size)
    ok("animated_gif", encode(first, "GIF", save_all=True, append_images=rest, duration=100, loop=0), size,
       "banners/anim.gif", "GIF", "P", "3 frames: red, green, blue")
    ok("animated_webp", encode(first, "WEBP", save_all=True, append_images=rest, duration=100, lossless=True),
       size, "banners/anim.webp", "WEBP", "RGB", "3 frames: red, green, blue")
    ok("animated_png", encode(first, "PNG", save_all=True, append_images=rest, duration=100), size,
       "banners/anim.png", "PNG", "RGB", "APNG, 3 frames: red, green, blue")
    ok("webp", encode(photo, "WEBP", quality=90), (64, 48), "photos/quadrants.webp", "WEBP", "RGB")
    ok("bmp", encode(photo, "BMP"), (64, 48), "legacy/quadrants.bmp", "BMP", "RGB")
    ok("tiff", encode(photo, "TIFF", compression="tiff_lzw"), (64, 48), "archive/quadrants.tif", "TIFF", "RGB")
    ok("mpo", encode(photo, "MPO", save_all=True, append_images=[photo]), (64, 48), "photos/stereo.jpg", "MPO",
       "RGB", "multi-picture JPEG from a camera: 2 frames")
    ok("heic", heic_bytes(photo), (64, 48), "photos/iphone.heic", "HEIF", "RGB", "a phone photo (HEVC in HEIF)")
    ok("heic_rotated", heic_bytes(photo, orientation=6), (48, 64), "photos/iphone-portrait.heic", "HEIF", "RGB",
       "stored 64x48, turned by the container's rotation: displayed 48x64")
    ok("svg", quadrant_svg().encode(), (64, 48), "logos/vector.svg", "SVG", "RGBA", "four rects: the quadrants")
    ok("svg_in_mm", quadrant_svg('width="20mm" height="15mm"').encode(), (76, 57), "logos/print.svg", "SVG",
       "RGBA", "a size in millimetres: 96 px to the inch")
    if features.check("avif"):  # Pillow >= 11.2 wheels read and write AVIF
        ok("avif", encode(photo, "AVIF", quality=90), (64, 48), "photos/quadrants.avif", "AVIF", "RGB")
    # 12 M pixels, all zero: a 36 MB RGB array from a PNG of about 1.5 kB.
    large = Image.new("1", (4000, 3000))
    ok("large_png", encode(large, "PNG", optimize=True), (4000, 3000), "scans/large.png", "PNG", "1",
       "big but under the default pixel cap")

    # ---- bad objects --------------------------------------------------------------------------
    bad("empty", b"", "empty", "photos/empty.jpg")
    bad("zeros", bytes(4096), "not_an_image", "photos/zeros.jpg", "a preallocated, never-written object")
    noise = rng.integers(0, 256, 512, dtype=np.uint8).tobytes()
    bad("zero_padded_garbage", b"\x13\x37" + noise + bytes(3584), "not_an_image", "photos/garbage.png")
    bad("html_as_jpg", _html(), "not_an_image", "logos/brand.jpg", "an HTTP 404 page saved under an image name")
    bad("plain_text", b"This object was replaced by a placeholder.\nContact the admin.\n", "not_an_image",
        "logos/brand.png")
    bad("json", b'{"error": {"code": 403, "message": "Forbidden"}}\n', "not_an_image", "thumbs/123.jpg")
    bad("s3_error_xml",
        b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
        b"<Message>Access Denied</Message></Error>", "not_an_image", "thumbs/124.jpg")
    bad("pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n", "not_an_image",
        "press/logo.jpg")
    bad("svg_bomb", quadrant_svg('width="100000" height="100000"').encode(), "too_large", "logos/bomb.svg",
        "declares 100000x100000 px: refused before anything is drawn")
    bad("svg_external", b'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        b'width="10" height="10"><image xlink:href="file:///etc/hostname" width="10" height="10"/></svg>',
        "unsupported", "logos/linked.svg", "references a local file: never read")
    bad("svg_broken", b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10"',
        "corrupt", "logos/cut.svg", "the document stops inside a tag")
    bad("heic_header_only", struct.pack(">I", 24) + b"ftypheic" + b"\x00\x00\x00\x00mif1heic" + bytes(64),
        "corrupt", "photos/iphone.jpg", "an ftyp box and zeros: no image in it")
    bad("psd", b"8BPS\x00\x01" + bytes(64), "unsupported", "design/logo.png", "a Photoshop document")
    bad("truncated_jpeg", noisy_jpeg[: len(noisy_jpeg) // 2], "truncated", "photos/partial.jpg")
    bad("truncated_png", noisy_png[: len(noisy_png) // 2], "truncated", "logos/partial.png")
    anim = samples["animated_gif"].data
    bad("truncated_gif", anim[: len(anim) // 2], "truncated", "banners/partial.gif")
    webp = samples["webp"].data
    bad("truncated_webp", webp[: len(webp) // 2], "truncated", "photos/partial.webp")
    bad("png_bomb", png_bytes(100_000, 100_000, 8, 2), "too_large", "logos/bomb.png",
        "IHDR declares 100000x100000 RGB (30 GB decoded)")
    bad("jpeg_bomb", set_jpeg_size(jpeg, 65_000, 65_000), "too_large", "photos/bomb.jpg",
        "SOF0 declares 65000x65000")
    # Two start-of-image markers inside the entropy-coded data: libjpeg stops with an error. (Most
    # corruption of JPEG scan data, e.g. zeroed bytes, decodes to garbage pixels without any error.)
    middle = len(noisy_jpeg) // 2
    corrupt = noisy_jpeg[:middle] + b"\xff\xd8\xff\xd8" + noise[:60] + noisy_jpeg[middle + 64 :]
    bad("corrupt_jpeg", corrupt, "corrupt", "photos/corrupt.jpg")
    return samples


def image_kinds() -> dict[str, Sample]:
    """Every sample by name (a new dict each call; the samples themselves are immutable)."""
    return dict(_build())


def ok_kinds() -> dict[str, Sample]:
    return {name: s for name, s in _build().items() if s.expected_kind is None}


def error_kinds() -> dict[str, Sample]:
    return {name: s for name, s in _build().items() if s.expected_kind is not None}

"""lxn.images: every sample kind decodes to its expected outcome, conversions are right, bombs are
refused before decoding, and nothing but the process-level exceptions escapes."""

from __future__ import annotations

import io
import pickle
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image, ImageFile

from lxn import images
from lxn.images import (
    BACKGROUND,
    ERROR_KINDS,
    DecodedImage,
    ImageDecodeError,
    classify_error,
    decode_image,
    encode_jpeg,
    safe_decode,
)
from tests.image_samples import QUADRANT_COLOURS, encode, exif_jpeg, image_kinds, quadrant_image

SAMPLES = image_kinds()
WHITE = np.array(BACKGROUND)


def close(pixel, expected, tol: int) -> bool:
    return bool(np.all(np.abs(np.asarray(pixel, int) - np.asarray(expected, int)) <= tol))


def quadrant_centres(pixels: np.ndarray) -> dict[str, np.ndarray]:
    """Pixel at the centre of each quadrant (far from JPEG's blurred borders)."""
    h, w = pixels.shape[:2]
    ys, xs = (h // 4, 3 * h // 4), (w // 4, 3 * w // 4)
    return {
        "tl": pixels[ys[0], xs[0]], "tr": pixels[ys[0], xs[1]], "bl": pixels[ys[1], xs[0]], "br": pixels[ys[1], xs[1]]
    }


# ---- every kind of sample -------------------------------------------------------------------


def test_samples_cover_every_error_kind():
    assert {s.expected_kind for s in SAMPLES.values()} == {None, *ERROR_KINDS}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_sample_decodes_to_expected_outcome(name):
    sample = SAMPLES[name]
    image, kind, reason = safe_decode(sample.data)
    if sample.expected_kind is not None:
        assert image is None and kind == sample.expected_kind, reason
        assert isinstance(reason, str) and 10 < len(reason) < 300
        with pytest.raises(ImageDecodeError) as raised:
            decode_image(sample.data)
        assert (raised.value.kind, raised.value.reason) == (kind, reason)
        return
    assert kind is None and reason is None
    assert (image.width, image.height) == sample.expected_size
    assert (image.format, image.mode) == (sample.expected_format, sample.expected_mode)
    assert image.pixels.dtype == np.uint8
    assert image.pixels.shape == (sample.expected_size[1], sample.expected_size[0], 3)
    assert image.decoded_size == sample.expected_size


@pytest.mark.parametrize(
    "name, cut", [("rgb_jpeg", 20), ("rgb_png", 40), ("animated_gif", 40), ("webp", 12), ("bmp", 12)]
)
def test_cut_inside_the_header_is_truncated(name, cut):
    _, kind, reason = safe_decode(SAMPLES[name].data[:cut])
    assert kind == "truncated", reason


def test_binary_noise_is_not_text():
    _, kind, reason = safe_decode(b"\x89\x90\x91binary\x85\x86")
    assert kind == "not_an_image" and "no known image signature" in reason


@pytest.mark.parametrize(
    "name, words",
    [
        ("html_as_jpg", ["HTML", "404 Not Found"]),
        ("plain_text", ["plain text", "placeholder"]),
        ("json", ["JSON", "Forbidden"]),
        ("s3_error_xml", ["XML", "AccessDenied"]),
        ("pdf", ["PDF"]),
        ("zeros", ["zero"]),
        ("svg_bomb", ["SVG", "100,000x100,000"]),
        ("svg_external", ["SVG", "file:///etc/hostname"]),
        ("heic_header_only", ["HEIF"]),
        ("psd", ["Photoshop"]),
        ("truncated_jpeg", ["JPEG", "ends early"]),
        ("truncated_png", ["PNG", "ends early"]),
        ("truncated_gif", ["GIF", "ends early"]),
        ("truncated_webp", ["WEBP", "ends early"]),
    ],
)
def test_reason_says_what_the_bytes_are(name, words):
    _, _, reason = safe_decode(SAMPLES[name].data)
    for word in words:
        assert word in reason


# ---- conversions ----------------------------------------------------------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(orientation):
    image = decode_image(exif_jpeg(orientation, 64, 48))
    swapped = orientation >= 5
    assert (image.width, image.height) == ((48, 64) if swapped else (64, 48))
    assert image.decoded_size == (image.width, image.height)
    # Where each stored quadrant ends up, from the EXIF definitions written out as numpy geometry.
    stored = np.array([["tl", "tr"], ["bl", "br"]])
    shown = {
        1: stored,
        2: stored[:, ::-1],
        3: stored[::-1, ::-1],
        4: stored[::-1, :],
        5: stored.T,
        6: np.rot90(stored, k=-1),  # 90 degrees clockwise
        7: stored[::-1, ::-1].T,
        8: np.rot90(stored, k=1),  # 90 degrees counter-clockwise
    }[orientation]
    centres = quadrant_centres(image.pixels)
    for corner, source in zip(["tl", "tr", "bl", "br"], shown.ravel()):
        assert close(centres[corner], QUADRANT_COLOURS[source], 8), (corner, source, centres[corner])


def test_exif_rotated_sample_moves_the_top_left_corner():
    image = decode_image(SAMPLES["exif_rotated_jpeg"].data)  # stored 64x48, orientation 6
    assert (image.width, image.height) == (48, 64)
    assert close(image.pixels[2, -3], QUADRANT_COLOURS["tl"], 8)  # stored top-left is now top-right
    assert close(image.pixels[2, 2], QUADRANT_COLOURS["bl"], 8)


def test_broken_exif_does_not_cost_the_image():
    data = encode(Image.new("RGB", (8, 6), (255, 0, 0)), "JPEG", exif=b"Exif\x00\x00not a tiff header")
    image = decode_image(data)
    assert (image.width, image.height) == (8, 6) and close(image.pixels[0, 0], (255, 0, 0), 4)


def test_16_bit_grey_is_scaled_not_clipped():
    image = decode_image(SAMPLES["gray16_png"].data)  # 0, 257, 32768, 60000, 65535
    assert image.pixels[0, :, 0].tolist() == [0, 1, 128, 233, 255]  # 60000 / 257 = 233.46
    assert (image.pixels == image.pixels[..., :1]).all()  # grey: R = G = B


def test_16_bit_rgb_png_keeps_its_colours():
    image = decode_image(SAMPLES["rgb16_png"].data)  # (65535, 32768, 0), (2570, 51400, 65535)
    assert close(image.pixels[0, 0], (255, 128, 0), 1)
    assert close(image.pixels[0, 1], (10, 200, 255), 1)


@pytest.mark.parametrize(
    "values, dtype, expected",
    [
        ([0, 32768, 65535, 70000, -5], np.int32, [0, 128, 255, 255, 0]),  # I: 16-bit data, clipped
        ([0.0, 0.5, 1.0, 2.0, np.nan], np.float32, [0, 128, 255, 255, 0]),  # F: 0..1, clipped
    ],
)
def test_32_bit_tiff_modes(values, dtype, expected):
    data = encode(Image.fromarray(np.array([values], dtype)), "TIFF")
    image = decode_image(data)
    assert image.mode == ("I" if dtype == np.int32 else "F")
    assert image.pixels[0, :, 0].tolist() == expected


def test_palette_transparency_is_composited_over_white():
    opaque = decode_image(SAMPLES["palette_png"].data).pixels
    transparent = decode_image(SAMPLES["palette_png_transparent"].data).pixels  # index 2 (blue) clear
    blue = (opaque == (0, 0, 255)).all(axis=-1)
    assert blue.any() and (~blue).any()
    assert (transparent[blue] == WHITE).all()
    assert (transparent[~blue] == opaque[~blue]).all()


def test_partial_palette_alpha_and_colour_keys():
    palette = Image.fromarray(np.array([[0, 1]], np.uint8), "P")
    palette.putpalette([255, 0, 0, 0, 0, 255])
    half_blue = decode_image(encode(palette, "PNG", transparency=b"\xff\x80")).pixels[0]  # blue at alpha 128
    assert close(half_blue[0], (255, 0, 0), 0) and close(half_blue[1], (127, 127, 255), 1)
    gif = decode_image(encode(palette, "GIF", transparency=1)).pixels[0]
    assert close(gif[0], (255, 0, 0), 0) and close(gif[1], BACKGROUND, 0)
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[:, 0] = (0, 0, 255)
    rgb[:, 1] = (255, 0, 0)
    keyed = decode_image(encode(Image.fromarray(rgb), "PNG", transparency=(0, 0, 255))).pixels
    assert (keyed[:, 0] == WHITE).all() and (keyed[:, 1] == (255, 0, 0)).all()


def test_alpha_is_composited_over_white():
    rgba = decode_image(SAMPLES["rgba_png"].data).pixels  # red at alpha 128
    assert close(rgba[0, 0], (255, 127, 127), 1)
    la = decode_image(SAMPLES["la_png"].data).pixels  # left grey 100 opaque, right transparent
    assert close(la[0, 0], (100, 100, 100), 0) and close(la[0, -1], BACKGROUND, 0)


@pytest.mark.parametrize("name", ["cmyk_jpeg", "cmyk_jpeg_no_adobe"])
def test_cmyk_colours(name):
    image = decode_image(SAMPLES[name].data)
    assert image.mode == "CMYK"
    centres = quadrant_centres(image.pixels)
    expected = {"tl": (0, 255, 255), "tr": (255, 0, 255), "bl": (255, 255, 0), "br": (0, 0, 0)}
    for corner, colour in expected.items():
        assert close(centres[corner], colour, 8), (corner, centres[corner])


def test_pillow_alone_inverts_cmyk_without_adobe_marker():
    # The premise of the no-Adobe fix: Pillow assumes Adobe's inverted CMYK for every CMYK JPEG.
    # If this starts failing, Pillow changed its convention and images.py must follow.
    naive = np.asarray(Image.open(io.BytesIO(SAMPLES["cmyk_jpeg_no_adobe"].data)).convert("RGB"))
    assert not close(quadrant_centres(naive)["tl"], (0, 255, 255), 64)


def test_bilevel_and_grey():
    bilevel = decode_image(SAMPLES["bilevel_png"].data).pixels
    assert set(np.unique(bilevel).tolist()) == {0, 255}
    grey = decode_image(SAMPLES["gray_jpeg"].data).pixels  # a ramp 0, 4, ... 252 along x
    assert (grey[..., 0] == grey[..., 2]).all()
    assert close(grey[8, ::16, 0], [0, 64, 128, 192], 4)


@pytest.mark.parametrize("name", ["animated_gif", "animated_webp", "animated_png"])
def test_animations_use_the_first_frame(name):
    image = decode_image(SAMPLES[name].data)  # red, green, blue frames
    assert image.frames == 3
    assert (image.pixels == (255, 0, 0)).all()


def test_mpo_is_a_jpeg_with_frames():
    image = decode_image(SAMPLES["mpo"].data, target_size=16)
    assert (image.format, image.frames, image.width, image.decoded_size) == ("MPO", 2, 64, (32, 24))


# ---- caps -----------------------------------------------------------------------------------


def test_bomb_is_refused_from_its_header(monkeypatch):
    def no_decoding(self):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    for name, declared in [("png_bomb", "100000x100000"), ("jpeg_bomb", "65000x65000")]:
        with pytest.raises(ImageDecodeError) as raised:
            decode_image(SAMPLES[name].data)
        assert raised.value.kind == "too_large"
        assert declared in raised.value.reason


def test_max_pixels_is_per_call_and_pillow_globals_stay_untouched():
    before = (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES)
    data = SAMPLES["rgb_png"].data  # 64 x 48 = 3072 pixels
    assert decode_image(data, max_pixels=3072).width == 64
    with pytest.raises(ImageDecodeError, match="too_large: .*64x48 = 3,072 pixels, above the limit of 3,071"):
        decode_image(data, max_pixels=3071)
    # The PNG bomb declares 10^10 pixels, beyond Pillow's own global limit too, and is still
    # reported by this module's check (with the declared size), not Pillow's.
    assert "100000x100000" in safe_decode(SAMPLES["png_bomb"].data, max_pixels=10**6)[2]
    assert (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES) == before


def test_max_bytes():
    data = SAMPLES["rgb_png"].data
    assert safe_decode(data, max_bytes=len(data))[1] is None
    assert safe_decode(data, max_bytes=None)[1] is None
    _, kind, reason = safe_decode(data, max_bytes=len(data) - 1)
    assert kind == "too_large" and f"{len(data):,} bytes" in reason


def test_formats_limit_what_is_opened():
    _, kind, reason = safe_decode(SAMPLES["rgb_png"].data, formats=("JPEG",))
    assert kind == "unsupported" and "PNG" in reason
    assert decode_image(SAMPLES["rgb_png"].data, formats=("png",)).format == "PNG"


# ---- draft decoding -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_jpeg() -> bytes:
    return encode(quadrant_image(1024, 768), "JPEG", quality=90)


@pytest.mark.parametrize(
    "target, decoded",
    [(None, (1024, 768)), (224, (512, 384)), ((100, 100), (256, 192)), (96, (128, 96)), (2000, (1024, 768))],
)
def test_draft_decodes_smaller_and_keeps_original_size(big_jpeg, target, decoded):
    image = decode_image(big_jpeg, target_size=target)
    assert (image.width, image.height) == (1024, 768)
    assert image.decoded_size == decoded
    centres = quadrant_centres(image.pixels)
    for corner, colour in QUADRANT_COLOURS.items():
        assert close(centres[corner], colour, 8)


def test_draft_target_is_in_displayed_orientation():
    data = exif_jpeg(6, 1024, 768)  # displayed 768 x 1024
    image = decode_image(data, target_size=(192, 256))  # a quarter of the displayed size
    assert (image.width, image.height) == (768, 1024)
    assert image.decoded_size == (192, 256)


def test_draft_ignores_other_formats():
    image = decode_image(encode(quadrant_image(256, 128), "PNG"), target_size=32)
    assert image.decoded_size == (256, 128)


@pytest.mark.parametrize("bad", [0, -1, (10,), (10, 0), 2.5])
def test_bad_target_size(bad):
    with pytest.raises(ValueError, match="target_size"):
        decode_image(SAMPLES["rgb_jpeg"].data, target_size=bad)


# ---- encode_jpeg ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "size, max_side, expected",
    [((300, 200), 100, (100, 67)), ((200, 300), 100, (67, 100)), ((300, 200), None, (300, 200)),
     ((300, 200), 500, (300, 200)), ((1000, 3), 100, (100, 1))],
)
def test_encode_jpeg_bounds_size_and_keeps_aspect(size, max_side, expected):
    pixels = np.asarray(quadrant_image(*size))
    image = decode_image(encode_jpeg(pixels, max_side=max_side, quality=90))
    assert (image.format, image.width, image.height) == ("JPEG", *expected)
    if min(expected) >= 16:
        for corner, colour in quadrant_centres(image.pixels).items():
            assert close(colour, QUADRANT_COLOURS[corner], 8)


def test_encode_jpeg_quality_changes_size():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert len(encode_jpeg(pixels, quality=30)) < len(encode_jpeg(pixels, quality=95))


@pytest.mark.parametrize(
    "pixels, kwargs",
    [
        (np.zeros((4, 4), np.uint8), {}),
        (np.zeros((4, 4, 4), np.uint8), {}),
        (np.zeros((4, 4, 3), np.float32), {}),
        (np.zeros((0, 4, 3), np.uint8), {}),
        (np.zeros((4, 4, 3), np.uint8), {"quality": 0}),
        (np.zeros((4, 4, 3), np.uint8), {"quality": 100}),
        (np.zeros((4, 4, 3), np.uint8), {"max_side": 0}),
    ],
)
def test_encode_jpeg_rejects_bad_input(pixels, kwargs):
    with pytest.raises(ValueError):
        encode_jpeg(pixels, **kwargs)


# ---- errors as values -----------------------------------------------------------------------


def test_decoded_image_is_immutable():
    image = decode_image(SAMPLES["rgb_png"].data)
    assert isinstance(image, DecodedImage)
    with pytest.raises(ValueError):
        image.pixels[0, 0] = 0
    with pytest.raises(AttributeError):
        image.width = 1


def test_error_pickles_and_rejects_unknown_kinds():
    error = pickle.loads(pickle.dumps(ImageDecodeError("truncated", "the data ends early")))
    assert (error.kind, error.reason) == ("truncated", "the data ends early")
    assert str(error) == "truncated: the data ends early"
    assert isinstance(error, ValueError)
    with pytest.raises(ValueError, match="unknown error kind"):
        ImageDecodeError("weird", "x")


@pytest.mark.parametrize(
    "exc, kind, words",
    [
        (Image.DecompressionBombError("Image size (1 pixels) exceeds limit"), "too_large", "Pillow"),
        (EOFError(), "truncated", "EOFError"),
        (OSError("image file is truncated (3 bytes not processed)"), "truncated", "3 bytes"),
        (OSError("decoder group4 not available"), "unsupported", "group4"),
        (ValueError("illegal conversion"), "unsupported", "illegal conversion"),
        (RuntimeError("boom"), "corrupt", "RuntimeError: boom"),
        (KeyError(7), "corrupt", "KeyError: 7"),
    ],
)
def test_classify_error(exc, kind, words):
    error = classify_error(exc)
    assert error.kind == kind and words in error.reason
    already = ImageDecodeError("empty", "nothing")
    assert classify_error(already) is already


@pytest.mark.parametrize("fatal", [MemoryError(), KeyboardInterrupt(), SystemExit(1)])
def test_process_level_exceptions_are_never_values(fatal, monkeypatch):
    with pytest.raises(type(fatal)):
        classify_error(fatal)

    def explode(*args, **kwargs):
        raise fatal

    monkeypatch.setattr(images, "_decode", explode)
    with pytest.raises(type(fatal)):
        safe_decode(SAMPLES["rgb_png"].data)


def test_unexpected_decoder_failure_is_a_value(monkeypatch):
    def explode(*args, **kwargs):
        raise ZeroDivisionError("a decoder bug")

    monkeypatch.setattr(images, "_to_rgb", explode)
    image, kind, reason = safe_decode(SAMPLES["rgb_png"].data)
    assert (image, kind) == (None, "corrupt") and "ZeroDivisionError: a decoder bug" in reason


@pytest.mark.parametrize(
    "kwargs", [{"max_pixels": 0}, {"target_size": -3}, {"formats": None}, {"formats": "JPEG"}, {"colour": "red"}]
)
def test_caller_bugs_are_raised_not_reported_as_bad_images(kwargs):
    with pytest.raises((ValueError, TypeError)):
        safe_decode(SAMPLES["rgb_png"].data, **kwargs)


def test_null_and_buffer_inputs():
    assert safe_decode(None)[1] == "empty"
    data = SAMPLES["rgb_png"].data
    assert decode_image(bytearray(data)).width == decode_image(memoryview(data)).width == 64


def test_concurrent_decoding_matches_sequential():
    names = [n for n in sorted(SAMPLES) if n != "large_png"]

    def outcome(name):
        image, kind, reason = safe_decode(SAMPLES[name].data)
        return (kind, reason) if image is None else (image.width, image.height, image.pixels.tobytes())

    sequential = [outcome(n) for n in names]
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(outcome, names * 3)) == sequential * 3


# ---- HEIC and SVG -----------------------------------------------------------------------------


@pytest.mark.parametrize("name, shown", [("heic", [["tl", "tr"], ["bl", "br"]]),
                                         ("heic_rotated", np.rot90([["tl", "tr"], ["bl", "br"]], k=-1))])
def test_a_phone_photo_in_heic_decodes_as_displayed(name, shown):
    image = decode_image(SAMPLES[name].data)
    assert image.format == "HEIF" and image.decoded_size == (image.width, image.height)
    centres = quadrant_centres(image.pixels)
    for corner, source in zip(["tl", "tr", "bl", "br"], np.asarray(shown).ravel()):
        assert close(centres[corner], QUADRANT_COLOURS[source], 16), (corner, source, centres[corner])


def test_an_svg_is_drawn_as_its_shapes_and_only_as_large_as_asked():
    image = decode_image(SAMPLES["svg"].data)
    assert (image.width, image.height, image.format) == (64, 48, "SVG")
    for corner, pixel in quadrant_centres(image.pixels).items():
        assert close(pixel, QUADRANT_COLOURS[corner], 2), corner
    small = decode_image(SAMPLES["svg"].data, target_size=16)  # drawn at 1/3: both sides still >= 16
    assert (small.width, small.height) == (64, 48) and min(small.decoded_size) == 16 and small.decoded_size[0] >= 21
    big = decode_image(SAMPLES["svg"].data, target_size=512)  # never above the size it declares
    assert big.decoded_size == (64, 48)


def test_an_svg_on_a_transparent_canvas_is_on_white_and_internal_references_are_fine():
    svg = (b'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="20" '
           b'height="10"><defs><rect id="r" width="10" height="10" fill="#000"/></defs><use xlink:href="#r"/></svg>')
    image = decode_image(svg)
    assert close(image.pixels[5, 3], (0, 0, 0), 2) and close(image.pixels[5, 16], WHITE, 2)


@pytest.mark.parametrize("reference", ["http://example.com/a.png", "/etc/hostname", "logo.png"])
def test_an_svg_referencing_anything_outside_itself_is_refused(reference):
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><image href="{reference}" '
           f'width="10" height="10"/></svg>').encode()
    image, kind, reason = safe_decode(svg)
    assert image is None and kind == "unsupported" and reference in reason


def test_heic_and_svg_left_out_of_the_formats_are_unsupported_rows():
    formats = ("JPEG", "PNG")
    assert safe_decode(SAMPLES["svg"].data, formats=formats)[1:] == (
        "unsupported", "an SVG vector image, and SVG is not among the accepted formats")
    kind, reason = safe_decode(SAMPLES["heic"].data, formats=formats)[1:]
    assert kind == "unsupported" and "HEIF" in reason


@pytest.mark.parametrize("attributes, size", [
    ('width="64" height="48"', (64, 48)), ('viewBox="0 0 40 20"', (40, 20)),
    ('width="80" viewBox="0,0,40,20"', (80, 40)), ('height="1in" viewBox="0 0 40 20"', (192, 96)),
    ('width="50%" height="50%" viewBox="0 0 30 10"', (30, 10)), ('viewBox="0 0 x 1"', (100, 100)), ("", (100, 100))])
def test_an_svg_declares_its_size_as_resvg_reads_it(attributes, size):
    from lxn.svg import declared_size

    assert declared_size(f'<svg xmlns="http://www.w3.org/2000/svg" {attributes}></svg>') == pytest.approx(size)

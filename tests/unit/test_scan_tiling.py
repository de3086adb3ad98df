"""Multi-scale tiling: boxes, their mapping back to original pixels, and the best-tile choice."""

import numpy as np
import pytest

from lxn.presets import Preset
from lxn.presets import decode_side as decode_size
from lxn.scan.tiling import best_tile, crop_tiles, detect, grid_boxes, scale_boxes, tile_count


def test_whole_image_first_then_overlapping_grids():
    boxes = grid_boxes(300, 200, (2, 3))
    assert len(boxes) == tile_count((2, 3)) == 1 + 4 + 9
    assert boxes[0].tolist() == [0, 0, 300, 200]
    # grid 2: tiles of 2/3 of each side, stride 1/3, row by row
    assert boxes[1:5].tolist() == [[0, 0, 200, 133], [100, 0, 300, 133], [0, 67, 200, 200], [100, 67, 300, 200]]
    # grid 3: tiles of half the side, stride a quarter; the last tile ends on the border
    grid3 = boxes[5:]
    assert grid3[:, 0].tolist() == [0, 75, 150] * 3 and grid3[:, 2].tolist() == [150, 225, 300] * 3
    assert grid3[::3, 1].tolist() == [0, 50, 100] and grid3[::3, 3].tolist() == [100, 150, 200]


@pytest.mark.parametrize("size", [(1, 1), (2, 1), (5, 3), (641, 479), (4000, 3000)])
@pytest.mark.parametrize("grids", [(2,), (2, 3), (4,), (8,)])
def test_tiles_stay_inside_and_cover_the_image(size, grids):
    w, h = size
    boxes = grid_boxes(w, h, grids)
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 1] >= 0).all()
    assert (boxes[:, 2] <= w).all() and (boxes[:, 3] <= h).all()
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
    covered = np.zeros((h, w), bool)
    for x0, y0, x1, y1 in boxes[1 : 1 + grids[0] ** 2]:  # the first grid alone covers everything
        covered[y0:y1, x0:x1] = True
    assert covered.all()


def test_a_logo_on_a_tile_border_is_whole_in_a_neighbour():
    boxes = grid_boxes(400, 400, (3,))[1:]
    logo = (180, 180, 220, 220)  # straddles the 3x3 grid's first border (x = 200)
    inside = [(x0 <= logo[0] and y0 <= logo[1] and x1 >= logo[2] and y1 >= logo[3]) for x0, y0, x1, y1 in boxes]
    assert any(inside)


def test_boxes_map_back_to_original_pixels():
    # a 4000x3000 JPEG decoded at 1/8 scale: 500x375 decoded pixels
    local = grid_boxes(500, 375, (2,))
    original = scale_boxes(local, (500, 375), (4000, 3000))
    assert original[0].tolist() == [0, 0, 4000, 3000]
    assert original[1].tolist() == [0, 0, 2664, 2000]  # 333 decoded pixels are 2664 original ones
    assert (original[:, 2] <= 4000).all() and (original[:, 3] <= 3000).all()
    assert scale_boxes(np.array([[1, 1, 2, 2]]), (3, 3), (10, 10)).tolist() == [[3, 3, 7, 7]]


def test_decode_size_gives_the_smallest_tiles_the_model_size():
    assert decode_size(224, ()) == 224
    assert decode_size(224, (2,)) == 336
    assert decode_size(224, (2, 3)) == 448


def test_crops_go_through_the_preset():
    pixels = np.zeros((90, 120, 3), np.uint8)
    pixels[:45, :60] = (255, 0, 0)
    boxes = grid_boxes(120, 90, (2,))
    tiles = crop_tiles(pixels, boxes, Preset(image_size=32).resize)
    assert tiles.shape == (5, 32, 32, 3) and tiles.dtype == np.uint8
    assert tiles[1, 0, 0].tolist() == [255, 0, 0] and tiles[4, 31, 31].tolist() == [0, 0, 0]


def test_best_tile_is_the_most_brand_like_and_ignores_no_logo():
    probs = np.array([
        [[0.3, 0.3, 0.4], [0.2, 0.1, 0.7], [0.6, 0.2, 0.2]],  # class 2 is no-logo: tile 2 wins (0.6)
        [[0.5, 0.1, 0.4], [0.5, 0.2, 0.3], [0.1, 0.1, 0.8]],  # a tie between tiles 0 and 1: the whole image
    ])
    assert best_tile(probs, no_logo=2).tolist() == [2, 0]
    assert best_tile(probs, no_logo=None).tolist() == [1, 2]
    with pytest.raises(ValueError, match=r"\(N, T, K\)"):
        best_tile(probs[0], no_logo=None)


# ------------------------------------------------------------------------------ detections

BRANDS = np.array([True, True, True, False])  # class 3 is no-logo


def test_every_brand_a_tile_sees_is_a_detection_best_first():
    boxes = np.array([[0, 0, 600, 400], [0, 0, 300, 200], [300, 200, 600, 400], [300, 0, 600, 200]])
    top = np.array([0, 0, 1, 3])           # whole image and a tile: brand 0; another tile brand 1; no-logo
    conf = np.array([0.7, 0.9, 0.8, 0.99])
    found = detect(top, conf, boxes, is_brand=BRANDS, threshold=0.5)
    # brand 0's tile lies inside the whole image: one logo, at its best confidence, its box the tile
    assert found == [(0, 0.9, (0, 0, 300, 200)), (1, 0.8, (300, 200, 600, 400))]


def test_below_threshold_and_no_logo_tiles_detect_nothing():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 5, 5]])
    assert detect(np.array([3, 1]), np.array([0.99, 0.49]), boxes, is_brand=BRANDS, threshold=0.5) == []
    assert detect(np.array([3, 1]), np.array([0.99, 0.5]), boxes, is_brand=BRANDS, threshold=0.5) == [(1, 0.5, (0, 0, 5, 5))]


def test_neighbouring_tiles_that_see_one_logo_become_one_box_where_they_overlap():
    boxes = grid_boxes(400, 400, (3,))  # 3x3 tiles of 200 px, stride 100
    top = np.full(len(boxes), 3)
    conf = np.full(len(boxes), 0.9)
    top[[1, 2]] = 2  # the first two tiles of the top row both see brand 2 (a logo at x 100..200)
    conf[1], conf[2] = 0.8, 0.95
    assert detect(top, conf, boxes, is_brand=BRANDS, threshold=0.5) == [(2, 0.95, (100, 0, 200, 200))]


def test_two_logos_of_one_brand_apart_stay_two_and_other_brands_never_suppress():
    boxes = grid_boxes(400, 400, (3,))
    top = np.full(len(boxes), 3)
    conf = np.full(len(boxes), 0.9)
    top[[1, 9]] = 0    # opposite corners: no overlap
    top[2] = 1         # overlaps tile 1 by half, another brand
    found = detect(top, conf, boxes, is_brand=BRANDS, threshold=0.5)
    assert sorted(c for c, _, _ in found) == [0, 0, 1]
    assert {b for c, _, b in found if c == 0} == {(0, 0, 200, 200), (200, 200, 400, 400)}


def test_a_small_overlap_of_one_brand_is_two_detections():
    boxes = np.array([[0, 0, 100, 100], [60, 60, 160, 160]])  # overlap 40x40: 16% of either box
    found = detect(np.array([0, 0]), np.array([0.9, 0.8]), boxes, is_brand=BRANDS, threshold=0.5)
    assert [b for _, _, b in found] == [(0, 0, 100, 100), (60, 60, 160, 160)]


def test_a_logo_bigger_than_a_tile_is_one_detection_around_the_tiles_that_see_it():
    boxes = grid_boxes(200, 100, (2, 3))
    found = detect(np.zeros(len(boxes), dtype=int), np.ones(len(boxes)), boxes, is_brand=BRANDS, threshold=0.5)
    assert found == [(0, 1.0, (0, 0, 200, 100))]

"""M4CXR's boxes as text (Sec. III-A-2): pixel <-> 0–100, writing, and parsing model answers back."""
import pytest

from rrg_lite.data.boxes import (box_text, box_to_text, boxes_text, from_relative_100, is_valid_box_100, parse_box,
                                 parse_boxes, parse_labeled_boxes, to_relative_100)


def test_non_square_image_goes_through_the_centre_square_by_hand():
    # 300 wide × 200 high: the centre square is x in [50, 250], y in [0, 200], side 200
    # box [100, 50, 200, 150] -> ((100−50)/200, 50/200, (200−50)/200, 150/200) · 100 = [25, 25, 75, 75]
    assert to_relative_100([100, 50, 200, 150], 300, 200) == [25, 25, 75, 75]
    assert from_relative_100([25, 25, 75, 75], 300, 200) == [100.0, 50.0, 200.0, 150.0]
    # tall image 100 × 300: square y in [100, 200]; a box above the square is clipped to its top edge
    assert to_relative_100([0, 0, 50, 150], 100, 300) == [0, 0, 50, 50]
    assert box_to_text([100, 50, 200, 150], 300, 200) == "[25,25,75,75]"


def test_box_that_vanishes_on_the_grid_is_an_error():
    # a 0.2-px box on a 100-px image rounds to [50,50,50,50]
    with pytest.raises(ValueError, match=r"becomes \[50, 50, 50, 50\].*empty"):
        box_to_text([50.0, 50.0, 50.2, 50.2], 100, 100)


def test_validity():
    assert is_valid_box_100([0, 0, 100, 100])
    assert not is_valid_box_100([0, 0, 101, 100])
    assert not is_valid_box_100([5, 5, 5, 9])           # zero width
    assert not is_valid_box_100([1.0, 2, 3, 4])        # not integers
    assert not is_valid_box_100([1, 2, 3])


def test_writing_and_parsing_round_trip():
    boxes = [[1, 2, 30, 40], [50, 60, 70, 80]]
    text = "Yes. " + boxes_text(boxes) + "."
    assert text == "Yes. [1,2,30,40], [50,60,70,80]."
    assert parse_boxes(text) == boxes
    assert parse_box(text) == boxes[0]
    assert parse_box(box_text([3, 4, 5, 6])) == [3, 4, 5, 6]


def test_parse_box_is_tolerant_of_spaces_and_says_none_on_garbage():
    assert parse_box("[ 10 , 20,30 ,40 ]") == [10, 20, 30, 40]
    assert parse_box("the box is\n[10,20,30,40]\nthere") == [10, 20, 30, 40]
    assert parse_box("[10,20,300,40] then [1,2,3,4]") == [1, 2, 3, 4]     # first *valid* box
    for garbage in ("no box here", "[10,20,30]", "[a,b,c,d]", "", "[40,20,30,50]", "[1.5,2,3,4]"):
        assert parse_box(garbage) is None
    assert parse_box(None) is None


def test_parse_box_strict_says_why():
    with pytest.raises(ValueError, match="no .* box in 'nothing'"):
        parse_box("nothing", strict=True)
    with pytest.raises(ValueError, match=r"\[10, 20, 300, 40\].*above 100"):
        parse_box("[10,20,300,40]", strict=True)
    with pytest.raises(ValueError, match=r"\[40, 20, 30, 50\].*inverted"):
        parse_box("[40,20,30,50]", strict=True)
    with pytest.raises(ValueError, match=r"\[1\.5,2,3,4\].*not four integers"):
        parse_box("[1.5,2,3,4]", strict=True)
    with pytest.raises(ValueError, match="string"):
        parse_box(7, strict=True)


def test_labeled_boxes_of_a_multi_finding_answer():
    text = "pleural effusion [1,2,30,40], [50,60,70,80], lung  opacity [5,5,9,9]."
    assert parse_labeled_boxes(text) == [("pleural effusion", [1, 2, 30, 40]), ("pleural effusion", [50, 60, 70, 80]),
                                         ("lung opacity", [5, 5, 9, 9])]
    assert parse_labeled_boxes("[1,2,3,4]") == [("", [1, 2, 3, 4])]
    assert parse_labeled_boxes("Not found.") == []
    # an invalid box is skipped, its name carries on to the next box without a name
    assert parse_labeled_boxes("nodule [9,9,1,1], [2,2,4,4]") == [("nodule", [2, 2, 4, 4])]
    with pytest.raises(ValueError, match="string"):
        parse_labeled_boxes(None)

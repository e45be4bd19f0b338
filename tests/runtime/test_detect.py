"""Detection decoding (YOLO heads, TFLite_Detection_PostProcess outputs) and NMS against hand-computed boxes."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.bundle import FileEntry, Manifest, Preprocess, TensorSpec
from edgekit.errors import InputError, UsageError
from edgekit.runtime.detect import Detection, detection_format, detections, non_max_suppression

INPUT = 100  # the model's input is 100x100 in these tests


def manifest(outputs: list[tuple[str, tuple[int, ...]]], postprocess: dict | None = None) -> Manifest:
    """A detector's manifest; YOLO heads as [1, 4+C, N] unless the postprocess says otherwise (with so few
    candidates, their shapes alone cannot tell)."""
    if postprocess and postprocess.get("format") == "yolo":
        postprocess = {"layout": "4+C,N", **postprocess}
    return Manifest(
        name="detector",
        created_by="test",
        target={"name": "x86_64"},
        quantization="float32",
        inputs=(TensorSpec("image", (1, INPUT, INPUT, 3), "float32", preprocess=Preprocess((INPUT, INPUT), "RGB")),),
        outputs=tuple(TensorSpec(name, shape, "float32") for name, shape in outputs),
        files={"model.tflite": FileEntry("0" * 64, 1)},
        task="detect",
        postprocess=postprocess or {},
    )


def yolo_head(rows: list[list[float]], layout: str = "4+C,N") -> np.ndarray:
    """Rows of (cx, cy, w, h, score per class) as a [1, N, 4+C] or [1, 4+C, N] output."""
    head = np.asarray(rows, dtype=np.float32)[None]
    return head.transpose(0, 2, 1) if layout == "4+C,N" else head


def boxes_of(found: list[Detection]) -> list[list[float]]:
    return [list(d.box) for d in found]


# --- detection_format ---------------------------------------------------------------------------


def test_format_of_yolo_heads_in_both_layouts():
    assert detection_format([(1, 84, 2100)]) == {"format": "yolo", "layout": "4+C,N", "classes": 80, "candidates": 2100}
    assert detection_format([(1, 2100, 84)]) == {"format": "yolo", "layout": "N,4+C", "classes": 80, "candidates": 2100}
    assert detection_format([TensorSpec("output0", (1, 7, 144), "int8", 0.01, 0)])["classes"] == 3
    assert detection_format([(None, 7, 144)])["layout"] == "4+C,N"  # a Keras output shape
    assert detection_format([(None, 7, None)]) is None


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 4, 100), (1, 10), (2, 84, 2100), (1, 84, 2100, 1)])
def test_format_refuses_shapes_that_are_no_yolo_head(shape):
    assert detection_format([shape]) is None


def test_format_of_tflite_postprocess_outputs():
    shapes = [(1, 10, 4), (1, 10), (1, 10), (1,)]
    assert detection_format(shapes) == {
        "format": "ssd",
        "coordinates": "normalized",
        "boxes": 0,
        "classes": 1,
        "scores": 2,
        "count": 3,
    }
    # A TF2 export lists scores first; the names tell them apart.
    specs = [
        TensorSpec("StatefulPartitionedCall:2", (1, 10), "float32"),
        TensorSpec("StatefulPartitionedCall:0", (1, 10, 4), "float32"),
        TensorSpec("StatefulPartitionedCall:3", (1,), "float32"),
        TensorSpec("StatefulPartitionedCall:1", (1, 10), "float32"),
    ]
    found = detection_format(specs)
    assert (found["boxes"], found["scores"], found["classes"], found["count"]) == (1, 0, 3, 2)


@pytest.mark.parametrize(
    "shapes",
    [[(1, 10, 4), (1, 10), (1, 9), (1,)], [(1, 10, 4), (1, 10), (1, 10)], [(1, 10, 4), (1, 10), (1, 10), (1, 10)]],
)
def test_format_refuses_other_output_sets(shapes):
    assert detection_format(shapes) is None


# --- YOLO decoding ------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["4+C,N", "N,4+C"])
def test_yolo_pixel_boxes_come_back_in_the_original_image(layout):
    rows = [
        [50, 50, 20, 40, 0.9, 0.1],  # input box (40, 30, 60, 70)
        [10, 20, 10, 10, 0.05, 0.3],  # input box (5, 15, 15, 25), class 1
        [80, 80, 10, 10, 0.1, 0.2],  # below the threshold
    ]
    meta = manifest(
        [("output0", (1, 6, 3) if layout == "4+C,N" else (1, 3, 6))],
        {"format": "yolo", "layout": layout, "coordinates": "pixels"},
    )
    # Original image 200 wide and 50 high: x doubles, y halves.
    found = detections([yolo_head(rows, layout)], meta, (200, 50), labels=["a", "b"])
    assert [(d.label, d.index) for d in found] == [("a", 0), ("b", 1)]
    assert [d.score for d in found] == pytest.approx([0.9, 0.3])
    assert boxes_of(found) == [pytest.approx([80, 15, 120, 35]), pytest.approx([10, 7.5, 30, 12.5])]
    assert found[0].to_dict() == {"label": "a", "index": 0, "score": 0.9, "box": [80.0, 15.0, 120.0, 35.0]}


@pytest.mark.parametrize("layout", ["4+C,N", "N,4+C"])
def test_yolo_normalized_boxes(layout):
    rows = [[0.5, 0.25, 0.2, 0.1, 0.1, 0.7, 0.0]]
    shape = (1, 7, 1) if layout == "4+C,N" else (1, 1, 7)
    meta = manifest([("output0", shape)], {"format": "yolo", "layout": layout, "coordinates": "normalized"})
    found = detections([yolo_head(rows, layout)], meta, (640, 480))
    assert len(found) == 1 and found[0].index == 1 and found[0].label is None
    assert list(found[0].box) == pytest.approx([256, 96, 384, 144])


@pytest.mark.parametrize("layout, alias", [("4+C,N", "channels_first"), ("N,4+C", "channels_last")])
def test_yolo_layout_aliases(layout, alias):
    shape = (1, 5, 1) if layout == "4+C,N" else (1, 1, 5)
    meta = manifest([("output0", shape)], {"format": "yolo", "layout": alias, "coordinates": "normalized"})
    found = detections([yolo_head([[0.5, 0.5, 0.2, 0.2, 0.9]], layout)], meta)
    assert list(found[0].box) == pytest.approx([40, 40, 60, 60])


def test_yolo_coordinates_are_told_from_the_values_when_not_recorded():
    pixels = [[50, 50, 20, 20, 0.9], [90, 90, 10, 10, 0.0]]
    normalized = [[0.5, 0.5, 0.2, 0.2, 0.9], [0.9, 0.9, 0.1, 0.1, 0.0]]
    meta = manifest([("output0", (1, 5, 8))])  # empty postprocess: inferred from the shape
    for rows in (pixels, normalized):
        found = detections([yolo_head(rows + [[0, 0, 0, 0, 0]] * 6)], meta, (200, 200))
        assert boxes_of(found) == [pytest.approx([80, 80, 120, 120])]


def test_without_an_original_size_boxes_are_in_the_input_pixels():
    meta = manifest([("output0", (1, 5, 1))], {"format": "yolo", "coordinates": "normalized"})
    for size in (None, (0, 0)):
        found = detections([yolo_head([[0.5, 0.5, 0.2, 0.2, 0.9]])], meta, size)
        assert list(found[0].box) == pytest.approx([40, 40, 60, 60])


def test_boxes_are_clipped_to_the_image():
    meta = manifest([("output0", (1, 5, 1))], {"format": "yolo", "coordinates": "pixels"})
    found = detections([yolo_head([[5, 95, 20, 20, 0.9]])], meta, (100, 100))
    assert list(found[0].box) == pytest.approx([0, 85, 15, 100])


def test_same_class_overlaps_are_suppressed_other_classes_kept():
    rows = [
        [5, 5, 10, 10, 0.9, 0.0],  # A (0, 0, 10, 10) class 0
        [6, 5, 10, 10, 0.8, 0.0],  # (1, 0, 11, 10): IoU with A 90/110 = 0.82 → suppressed
        [10, 5, 10, 10, 0.7, 0.0],  # (5, 0, 15, 10): IoU with A 50/150 = 0.33 → kept
        [6, 5, 10, 10, 0.0, 0.85],  # same box as the second, class 1 → kept
        [7, 5, 10, 10, 0.0, 0.6],  # (2, 0, 12, 10): IoU 0.82 with the class-1 box above → suppressed
    ]
    meta = manifest([("output0", (1, 6, 5))], {"format": "yolo", "coordinates": "pixels"})
    found = detections([yolo_head(rows)], meta, (INPUT, INPUT), iou=0.45)
    assert [(d.index, round(d.score, 2)) for d in found] == [(0, 0.9), (1, 0.85), (0, 0.7)]
    assert boxes_of(found) == [pytest.approx(b) for b in ([0, 0, 10, 10], [1, 0, 11, 10], [5, 0, 15, 10])]
    # A looser IoU threshold keeps the overlapping box of class 0 as well.
    assert len(detections([yolo_head(rows)], meta, (INPUT, INPUT), iou=0.85)) == 5


def test_max_detections_keeps_the_best():
    rows = [[10 * i + 5, 50, 8, 8, 0.3 + 0.05 * i] for i in range(8)]  # disjoint boxes
    meta = manifest([("output0", (1, 5, 8))], {"format": "yolo", "coordinates": "pixels"})
    found = detections([yolo_head(rows)], meta, (INPUT, INPUT), max_detections=3)
    assert [round(d.score, 2) for d in found] == [0.65, 0.6, 0.55]
    assert len(detections([yolo_head(rows)], meta, (INPUT, INPUT), conf=0.5)) == 4


def test_nms_directly():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [5, 0, 15, 10], [0, 0, 0, 0]], dtype=np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.95], dtype=np.float32)
    classes = np.zeros(4, dtype=np.int64)
    assert non_max_suppression(boxes, scores, classes, 0.45, 100).tolist() == [3, 0, 2]
    assert non_max_suppression(boxes[:0], scores[:0], classes[:0], 0.45, 100).tolist() == []


def reference_nms(boxes, scores, classes, threshold, limit):
    keep = []
    for i in sorted(range(len(boxes)), key=lambda k: -scores[k]):
        if len(keep) == limit:
            break
        if all(classes[i] != classes[k] or box_iou(boxes[i], boxes[k]) <= threshold for k in keep):
            keep.append(i)
    return keep


def box_iou(a, b):
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@pytest.mark.parametrize("count, classes, limit", [(40, 1, 100), (700, 3, 100), (900, 1, 20), (600, 5, 1000)])
def test_nms_agrees_with_the_textbook_greedy_loop(count, classes, limit):
    rng = np.random.default_rng(count)
    centres = rng.uniform(0, 100, (count, 2))
    sizes = rng.uniform(2, 30, (count, 2))
    boxes = np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1).astype(np.float32)
    scores = rng.permutation(count).astype(np.float32) / count  # distinct: one right order
    kinds = rng.integers(0, classes, count)
    expected = reference_nms(boxes.tolist(), scores.tolist(), kinds.tolist(), 0.45, limit)
    assert non_max_suppression(boxes, scores, kinds, 0.45, limit).tolist() == expected


def test_non_finite_candidates_are_dropped():
    rows = [[np.nan, 50, 10, 10, 0.9], [50, 50, 10, 10, np.nan], [50, 50, 10, 10, 0.5]]
    meta = manifest([("output0", (1, 5, 3))], {"format": "yolo", "coordinates": "pixels"})
    assert [d.score for d in detections([yolo_head(rows)], meta, (INPUT, INPUT))] == [0.5]


# --- TFLite_Detection_PostProcess ----------------------------------------------------------------


def ssd_outputs(scores_first: bool = False) -> tuple[list[np.ndarray], Manifest]:
    boxes = np.array([[[0.1, 0.2, 0.5, 0.6], [0.0, 0.0, 1.0, 1.0], [0.5, 0.5, 0.7, 0.9]]], dtype=np.float32)
    classes = np.array([[2, 0, 1]], dtype=np.float32)
    scores = np.array([[0.8, 0.2, 0.6]], dtype=np.float32)
    count = np.array([2], dtype=np.float32)  # the third row is padding
    outputs = [boxes, classes, scores, count]
    if scores_first:  # unnamed, in the wrong order: the values tell scores from classes
        outputs = [boxes, scores, classes, count]
    meta = manifest([(f"out{i}", o.shape) for i, o in enumerate(outputs)], detection_format([o.shape for o in outputs]))
    return outputs, meta


@pytest.mark.parametrize("scores_first", [False, True])
def test_tflite_postprocess_outputs_are_read_as_they_are(scores_first):
    outputs, meta = ssd_outputs(scores_first)
    found = detections(outputs, meta, (200, 100), conf=0.25, labels=["cat", "dog", "bird"])
    assert len(found) == 1  # row 2 is under the threshold, row 3 past the count
    assert found[0].label == "bird" and found[0].index == 2 and found[0].score == pytest.approx(0.8)
    assert list(found[0].box) == pytest.approx([40, 10, 120, 50])  # xmin*200, ymin*100, xmax*200, ymax*100
    assert len(detections(outputs, meta, (200, 100), conf=0.1)) == 2


# --- errors --------------------------------------------------------------------------------------


def test_ssd_indices_default_to_the_inferred_ones():
    outputs, _ = ssd_outputs()
    meta = manifest([(f"o{i}", o.shape) for i, o in enumerate(outputs)], {"format": "ssd"})
    assert [d.index for d in detections(outputs, meta)] == [2]


def test_bad_settings_are_refused():
    meta = manifest([("output0", (1, 5, 1))])
    head = [yolo_head([[0.5, 0.5, 0.2, 0.2, 0.9]])]
    with pytest.raises(UsageError, match="--conf"):
        detections(head, meta, conf=1.5)
    with pytest.raises(UsageError, match="--iou"):
        detections(head, meta, iou=-0.1)
    with pytest.raises(UsageError, match="--max-detections"):
        detections(head, meta, max_detections=0)
    with pytest.raises(InputError, match="postprocess.format"):
        detections(head, manifest([("output0", (1, 5, 1))], {"format": "retina"}))
    with pytest.raises(InputError, match="postprocess.coordinates"):
        detections(head, manifest([("output0", (1, 5, 1))], {"format": "yolo", "coordinates": "cm"}))
    with pytest.raises(InputError, match="neither a YOLO head"):
        detections([np.zeros((1, 10))], manifest([("logits", (1, 10))]))
    with pytest.raises(InputError, match="postprocess.scores"):
        outputs, meta = ssd_outputs()
        detections(
            outputs, manifest([(f"o{i}", o.shape) for i, o in enumerate(outputs)], {"format": "ssd", "scores": 7})
        )

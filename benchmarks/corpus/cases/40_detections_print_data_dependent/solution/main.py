"""Post-processing of detector scores: keep confident boxes and print each one."""

import torch


@torch.compile(fullgraph=True)
def _select(scores, boxes, threshold):
    keep = scores > threshold
    return scores[keep], boxes[keep]


@torch.compiler.disable
def report_detections(scores, boxes, threshold=0.5):
    kept_scores, kept_boxes = _select(scores, boxes, threshold)
    for s, b in zip(kept_scores.tolist(), kept_boxes.tolist()):
        print(f"score {s:.2f} box {[round(v, 1) for v in b]}")
    return kept_scores, kept_boxes


def example_inputs():
    return torch.rand(8), torch.rand(8, 4) * 100

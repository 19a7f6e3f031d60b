"""CTC greedy decoding evaluation: CTC loss and character error rate."""

import torch
import torch.nn.functional as F

from textmetrics import char_error_rate


def evaluate_ctc(log_probs, targets, target_lengths):
    t, n, _ = log_probs.shape
    input_lengths = torch.full((n,), t, dtype=torch.long)
    loss = F.ctc_loss(log_probs, targets, input_lengths, target_lengths, blank=0)
    best_path = log_probs.argmax(dim=-1).T
    refs = [row[:length].tolist() for row, length in zip(targets, target_lengths.tolist())]
    cer = char_error_rate(best_path.tolist(), refs)
    return loss, torch.tensor(cer)


def example_inputs():
    log_probs = torch.randn(12, 3, 6).log_softmax(-1)
    targets = torch.randint(1, 6, (3, 5))
    target_lengths = torch.tensor([5, 3, 4])
    return log_probs, targets, target_lengths

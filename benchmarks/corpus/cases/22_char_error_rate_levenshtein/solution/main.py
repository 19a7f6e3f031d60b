"""CTC greedy decoding evaluation: CTC loss and character error rate."""

import torch
import torch.nn.functional as F

from textmetrics import char_error_rate


@torch.library.custom_op("corpus::ctc_loss_mean", mutates_args=())
def ctc_loss_mean(log_probs: torch.Tensor, targets: torch.Tensor, input_lengths: torch.Tensor,
                  target_lengths: torch.Tensor) -> torch.Tensor:
    return F.ctc_loss(log_probs, targets, input_lengths, target_lengths, blank=0)


@ctc_loss_mean.register_fake
def _(log_probs, targets, input_lengths, target_lengths):
    return log_probs.new_empty(())


@torch.library.custom_op("corpus::greedy_cer", mutates_args=())
def greedy_cer(best_path: torch.Tensor, targets: torch.Tensor, target_lengths: torch.Tensor) -> torch.Tensor:
    refs = [row[:length].tolist() for row, length in zip(targets, target_lengths.tolist())]
    return torch.tensor(char_error_rate(best_path.tolist(), refs))


@greedy_cer.register_fake
def _(best_path, targets, target_lengths):
    return best_path.new_empty((), dtype=torch.float32)


def evaluate_ctc(log_probs, targets, target_lengths):
    t, n, _ = log_probs.shape
    input_lengths = torch.full((n,), t, dtype=torch.long)
    loss = ctc_loss_mean(log_probs, targets, input_lengths, target_lengths)
    best_path = log_probs.argmax(dim=-1).T
    return loss, greedy_cer(best_path, targets, target_lengths)


def example_inputs():
    log_probs = torch.randn(12, 3, 6).log_softmax(-1)
    targets = torch.randint(1, 6, (3, 5))
    target_lengths = torch.tensor([5, 3, 4])
    return log_probs, targets, target_lengths

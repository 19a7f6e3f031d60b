"""Data-dependent control flow: a branch on a tensor's value becomes ``torch.cond``, a validation
``raise`` on one a ``torch._check``. One module per codemod; ``_cond`` holds what they share."""

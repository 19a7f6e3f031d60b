"""breakfix: locate torch.compile graph breaks, rewrite them with LibCST, verify the rewrite."""

__version__ = "0.1.0"

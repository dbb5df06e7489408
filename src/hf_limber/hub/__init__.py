"""Sharing on the Hub: model cards for CLIP and LiMBeR folders, and pushing model or dataset folders.

Models also push themselves with transformers' `push_to_hub` (LiMBeR: `full=True` for every weight);
their saved folders carry the code, so `trust_remote_code=True` loads them with transformers alone.
"""

from .cards import write_model_card
from .push import push_folder

__all__ = ["push_folder", "write_model_card"]

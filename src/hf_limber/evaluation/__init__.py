"""Evaluation of captions and answers: CIDEr-D, CLIPScore / RefCLIPScore, VQA accuracy and the
lexical-concept analysis of LiMBeR. The `evaluate` modules in `hf_limber/metrics/` wrap these."""

from .captions import CiderResult, cider_d, tokenize_caption
from .clip_score import ClipScoreResult, clip_score, ref_clip_score
from .lexical import LexicalResult, caption_concepts, lexical_concepts
from .vqa import VqaResult, answer_accuracy, normalize_answer, vqa_accuracy
from .wordnet import load_wordnet, prepare_wordnet

__all__ = [
    "CiderResult", "ClipScoreResult", "LexicalResult", "VqaResult", "answer_accuracy", "caption_concepts",
    "cider_d", "clip_score", "lexical_concepts", "load_wordnet", "normalize_answer", "prepare_wordnet",
    "ref_clip_score", "tokenize_caption", "vqa_accuracy",
]

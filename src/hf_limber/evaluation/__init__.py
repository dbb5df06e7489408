"""Evaluation. CLIP: zero-shot classification with prompt ensembles, retrieval recall@K and the
paper's linear probe. LiMBeR: CIDEr-D, CLIPScore / RefCLIPScore, VQA accuracy and the lexical-concept
analysis. The `evaluate` modules in `hf_limber/metrics/` wrap these."""

from .captions import CiderResult, cider_d, tokenize_caption
from .chair import ChairResult, chair, scene_synonyms
from .clip_score import ClipScoreResult, clip_score, ref_clip_score
from .embedding import embed_images, embed_texts
from .gallery import EmbeddingGallery
from .lexical import LexicalResult, caption_concepts, lexical_concepts
from .linear_probe import LinearProbeResult, few_shot_indices, linear_probe
from .retrieval import retrieval_recall, top_matches
from .templates import EMOJI, IMAGENET, SIMPLE, TEMPLATE_SETS, template_set
from .vqa import VqaResult, answer_accuracy, normalize_answer, truncate_answer, vqa_accuracy
from .wordnet import load_wordnet, prepare_wordnet
from .zero_shot import ZeroShotClassifier, ZeroShotResult, class_weights, zero_shot_accuracy

__all__ = [
    "EMOJI", "IMAGENET", "SIMPLE", "TEMPLATE_SETS", "ChairResult", "CiderResult", "ClipScoreResult",
    "EmbeddingGallery", "LexicalResult", "LinearProbeResult", "VqaResult", "ZeroShotClassifier", "ZeroShotResult",
    "answer_accuracy", "caption_concepts", "chair", "cider_d", "class_weights", "clip_score", "embed_images",
    "embed_texts", "few_shot_indices", "lexical_concepts", "linear_probe", "load_wordnet", "normalize_answer",
    "prepare_wordnet", "ref_clip_score", "retrieval_recall", "scene_synonyms", "template_set", "tokenize_caption",
    "top_matches", "truncate_answer", "vqa_accuracy", "zero_shot_accuracy",
]

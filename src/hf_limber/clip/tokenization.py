"""CLIP's byte-level BPE tokenizer, from the released merges file or trained on a caption corpus.

Both give a transformers `CLIPTokenizer` (tokenizers-backed): lower-cased, whitespace-normalised,
words end in `</w>`, wrapped in <|startoftext|> ... <|endoftext|>.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import CLIPTokenizer

START_OF_TEXT = "<|startoftext|>"
END_OF_TEXT = "<|endoftext|>"
# Number of merges the released CLIP vocabulary uses (49,152 entries less the 256 byte symbols
# and the two special tokens), giving 49,408 ids in all.
CLIP_MERGES = 49152 - 256 - 2


def byte_symbols() -> list[str]:
    """One printable unicode character per byte value, in byte order (GPT-2 / CLIP byte-level BPE).

    Printable Latin-1 bytes stand for themselves; the others are shifted past 255 in order.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    symbols, shifted = {}, 0
    for byte in range(256):
        if byte in printable:
            symbols[byte] = chr(byte)
        else:
            symbols[byte] = chr(256 + shifted)
            shifted += 1
    # CLIP lists the printable bytes first, then the shifted ones.
    order = printable + [b for b in range(256) if b not in printable]
    return [symbols[b] for b in order]


def default_bpe_path() -> Path | None:
    """open_clip's copy of the released merges file, when open_clip is installed."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "bpe_simple_vocab_16e6.txt.gz"
    return path if path.exists() else None


def clip_tokenizer_from_bpe(bpe_path: str | Path, context_length: int = 77) -> CLIPTokenizer:
    """The released CLIP tokenizer from its merges file (`bpe_simple_vocab_16e6.txt.gz`)."""
    lines = gzip.open(bpe_path, "rt", encoding="utf-8").read().split("\n")
    merges = [tuple(line.split()) for line in lines[1 : CLIP_MERGES + 1]]
    symbols = byte_symbols()
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges] + [START_OF_TEXT, END_OF_TEXT]
    vocab = {token: index for index, token in enumerate(tokens)}
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=context_length, split_special_tokens=True)


def train_clip_tokenizer(texts: Iterable[str], vocab_size: int = 8192, context_length: int = 77,
                         min_frequency: int = 2) -> CLIPTokenizer:
    """A new CLIP-style BPE tokenizer trained on a caption corpus, for models trained from scratch.

    The two special tokens take the last ids, as in CLIP, so the end-of-text token is the largest id.
    """
    tokenizer = Tokenizer(models.BPE(end_of_word_suffix="</w>", continuing_subword_prefix=""))
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"),
                             behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    texts = list(texts)
    # tokenizers numbers the word-final symbols ("a</w>") in hash-map order and breaks ties between
    # equally frequent merges by id, so two trainings on one corpus could differ (huggingface/tokenizers
    # #1794). Naming those symbols up front, sorted, fixes their ids and with them the merges.
    word_ends = sorted({word[-1] + "</w>" for text in texts
                        for word, _ in tokenizer.pre_tokenizer.pre_tokenize_str(tokenizer.normalizer.normalize_str(text))})
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - 2, min_frequency=min_frequency, end_of_word_suffix="</w>",
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=word_ends, show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    trained = tokenizer.get_vocab()
    by_id, ends = sorted(trained, key=trained.__getitem__), set(word_ends)
    # CLIP's layout: the byte symbols, the word-final symbols, the merged tokens, then the two special tokens.
    tokens = ([token for token in by_id if len(token) == 1] + word_ends
              + [token for token in by_id if len(token) > 1 and token not in ends] + [START_OF_TEXT, END_OF_TEXT])
    vocab = {token: index for index, token in enumerate(tokens)}
    # The trained merges are read back from the serialised model: tokenizers exposes no getter.
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m)
              for m in json.loads(tokenizer.to_str())["model"]["merges"]]
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=context_length, split_special_tokens=True)

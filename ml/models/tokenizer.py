"""CLIP's own byte-level BPE tokenizer, built offline from the vendored merges file."""

from __future__ import annotations

import functools
import gzip
from pathlib import Path

from transformers import CLIPTokenizer


def bytes_to_unicode() -> dict[int, str]:
    """OpenAI CLIP's reversible byte -> printable unicode map."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


@functools.lru_cache(maxsize=4)
def reference_tokenizer(bpe_path: str) -> CLIPTokenizer:
    """The vocabulary of OpenAI CLIP (49,408 tokens) from ``clip_bpe_simple_vocab_16e6.txt.gz``,
    built exactly as OpenAI's SimpleTokenizer does."""
    path = Path(bpe_path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: CLIP BPE merges file missing (data/reference)")
    lines = gzip.open(path).read().decode("utf-8").split("\n")
    merges = [tuple(m.split()) for m in lines[1 : 49152 - 256 - 2 + 1]]
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab]
    vocab += ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    return CLIPTokenizer(vocab={t: i for i, t in enumerate(vocab)}, merges=merges)

"""A byte-level CLIP tokenizer built from files it writes itself (no vocabulary download).

Any text tokenizes (a byte per token when no merge applies), so prompts work end to end in the
tiny models, the toy base model and the random-weight SD 2.1-size pipelines of the speed benchmark.

    tok = tiny_tokenizer()                 # a transformers CLIPTokenizer, 514 tokens
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Sequence


SPECIAL_TOKENS = ("<|startoftext|>", "<|endoftext|>")


def _byte_symbols() -> list[str]:
    from transformers.models.clip.tokenization_clip import bytes_to_unicode

    return list(bytes_to_unicode().values())


def write_tokenizer_files(save_dir: str | os.PathLike, merges: Sequence[tuple[str, str]] = ()) -> Path:
    """Write a byte-level CLIP ``vocab.json`` / ``merges.txt`` into ``save_dir``.

    The vocabulary is every byte symbol, with and without the end-of-word marker ``</w>``, the
    merged symbols of ``merges``, and the start/end-of-text tokens last (as in CLIP's own vocab),
    so any text tokenizes (a byte per token when no merge applies).
    """
    save_dir = Path(save_dir)
    save_dir.mkdir(parents=True, exist_ok=True)
    symbols = _byte_symbols()
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    tokens += [t for t in SPECIAL_TOKENS]
    vocab: dict[str, int] = {}
    for t in tokens:
        vocab.setdefault(t, len(vocab))
    (save_dir / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    lines = ["#version: 0.2"] + [f"{a} {b}" for a, b in merges]
    (save_dir / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return save_dir


def tiny_tokenizer(save_dir: str | os.PathLike | None = None, model_max_length: int = 77):
    """A :class:`~transformers.CLIPTokenizer` on a small byte-level vocabulary (514 tokens).

    With ``save_dir`` the vocab files are written there and kept; otherwise in a temporary folder
    (the tokenizer keeps its vocabulary in memory, so the folder may go).
    """
    from transformers import CLIPTokenizer

    def build(folder: Path):
        write_tokenizer_files(folder)
        return CLIPTokenizer(
            vocab_file=str(folder / "vocab.json"),
            merges_file=str(folder / "merges.txt"),
            model_max_length=model_max_length,
        )

    if save_dir is not None:
        return build(Path(save_dir))
    with tempfile.TemporaryDirectory(prefix="scpdiff-tok-") as tmp:
        return build(Path(tmp))

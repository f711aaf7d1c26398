"""SentencePiece helpers for the tests: a Meta-like model and the spec §3 reference layout.

The shared ``spm_path`` fixture uses SentencePiece's default NFKC normalizer, which drops
whitespace: with it, ``encode("\\n") == []`` and torchtune's continuation trick never runs.
Meta's model keeps whitespace (identity normalizer, no whitespace squashing), so these tests
also train one like it to exercise the trick.
"""

from __future__ import annotations

import random
from pathlib import Path

_WORDS = (
    "the a to of and in is it that for on with as was he she they we you hello world "
    "assistant user system summarize dialogue correct english question answer model "
    "token train data chat message reply please thanks sure here help code python"
).split()


def train_meta_like_sentencepiece(out_dir: Path, vocab_size: int = 400) -> Path:
    """Train a small BPE model: unk 0, bos 1, eos 2, byte fallback, whitespace kept."""
    import sentencepiece as spm

    rng = random.Random(1)
    lines = []
    for _ in range(2000):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(3, 12))]
        sep = rng.choice([" ", " ", " ", "  ", "\n", "\n\n"])
        lines.append(sep.join(words) + rng.choice([".", "?", ":", ""]))
    lines += ["[INST] <<SYS>>\n hi \n<</SYS>>\n\n hello [/INST] ok"] * 20
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    text = out_dir / "meta_like.txt"
    text.write_text("\n".join(lines) + "\n", encoding="utf-8")
    prefix = out_dir / "meta_like"
    spm.SentencePieceTrainer.train(
        input=str(text),
        model_prefix=str(prefix),
        vocab_size=vocab_size,
        model_type="bpe",
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        byte_fallback=True,
        character_coverage=1.0,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        add_dummy_prefix=True,
        allow_whitespace_only_pieces=True,
        split_digits=True,
        num_threads=1,
        minloglevel=2,
    )
    return prefix.with_suffix(".model")


def golden_spm_chat(sp, messages, *, add_end_tokens=True, max_seq_len=None):
    """Spec §3 layout written from the spec with raw SentencePiece calls.

    ``messages`` are already templated: (role, [text parts], masked) tuples.
    Returns (tokens, mask).
    """
    encodes_whitespace = any(sp.encode(c) for c in (" ", "\n", "\t", "\r", "\v"))
    newline = sp.encode("\n")

    def encode(text, continuation):
        text = text.rstrip(" ")
        if continuation and encodes_whitespace:
            return sp.encode("\n" + text)[len(newline) :]
        return sp.encode(text)

    tokens, mask = [], []
    new_turn, prev_space, last_masked = True, False, None
    for role, parts, masked in messages:
        last_masked = masked
        if new_turn:
            tokens.append(sp.bos_id())
            mask.append(masked)
        continuation = not new_turn and not prev_space
        for part in parts:
            ids = encode(part, continuation)
            tokens += ids
            mask += [masked] * len(ids)
        prev_space = parts[-1].endswith(" ")
        new_turn = role == "assistant"
        if new_turn and add_end_tokens:
            tokens.append(sp.eos_id())
            mask.append(masked)
        if max_seq_len is not None and len(tokens) >= max_seq_len:
            break
    if max_seq_len is not None:
        tokens, mask = tokens[:max_seq_len], mask[:max_seq_len]
        if add_end_tokens:
            tokens[-1], mask[-1] = sp.eos_id(), last_masked
    return tokens, mask

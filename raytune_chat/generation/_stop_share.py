"""Did the model learn to stop? The share of prompts whose greedy answer ends in a stop token."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Any

from torch import nn

from raytune_chat.generation._generate import generate

__all__ = ["stop_share_record", "stop_token_share"]


def stop_token_share(
    model: nn.Module,
    prompts: Iterable[Sequence[int]],
    stop_tokens: Collection[int],
    max_new_tokens: int,
) -> tuple[float, int]:
    """Generate greedily from each prompt; return ``(share that stopped, number of prompts)``.

    A prompt counts as stopped when its generation ends with one of `stop_tokens` within
    `max_new_tokens`. The model is put in eval mode and given KV caches for the duration,
    then restored (training mode, no caches), so this can run between training steps. With
    no prompts the share is 0.0 and n is 0.

    Example:
        >>> from raytune_chat.models.llama3 import llama3
        >>> model = llama3(vocab_size=32, num_layers=1, num_heads=2, num_kv_heads=1,
        ...                embed_dim=8, max_seq_len=16)
        >>> first = generate(model.eval(), [1, 2], max_new_tokens=1, stop_tokens=[]).tokens[0]
        >>> stop_token_share(model, [[1, 2]], stop_tokens=[first], max_new_tokens=3)
        (1.0, 1)
        >>> stop_token_share(model, [[1, 2]], stop_tokens=[], max_new_tokens=3)
        (0.0, 1)
    """
    was_training = model.training
    had_caches = model.caches_are_enabled()
    dtype = model.tok_embeddings.weight.dtype
    model.eval()
    if not had_caches:
        model.setup_caches(batch_size=1, dtype=dtype)
    stopped = n = 0
    try:
        for prompt in prompts:
            result = generate(model, prompt, max_new_tokens=max_new_tokens, stop_tokens=stop_tokens)
            stopped += result.stop_reason == "stop_token"
            n += 1
    finally:
        if not had_caches:
            model.remove_caches()
        model.train(was_training)
    return (stopped / n if n else 0.0, n)


def stop_share_record(
    model: nn.Module, eval_prompts: dict[str, Any], max_new_tokens: int
) -> dict[str, Any]:
    """The metrics-log record of a training run's end-of-run stop check (`eval_generate_n`).

    `eval_prompts` holds the validation prompts and the stop tokens
    (`raytune_chat.training.ray_train.eval_prompts`).

    Example:
        >>> from raytune_chat.models.llama3 import llama3
        >>> model = llama3(vocab_size=32, num_layers=1, num_heads=2, num_kv_heads=1,
        ...                embed_dim=8, max_seq_len=16)
        >>> stop_share_record(model, {"prompts": [[1, 2]], "stop_tokens": []}, 3)
        {'stop_share': 0.0, 'stop_share_n': 1, 'stop_share_max_new_tokens': 3}
    """
    share, n = stop_token_share(
        model, eval_prompts["prompts"], eval_prompts["stop_tokens"], max_new_tokens
    )
    return {"stop_share": share, "stop_share_n": n, "stop_share_max_new_tokens": max_new_tokens}

"""The generation loop: plain torch, one prompt at a time, with or without the model's KV cache."""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from raytune_chat.generation._sampling import sample_next_token

__all__ = ["Generation", "StopReason", "generate"]

StopReason = Literal["stop_token", "max_new_tokens", "max_seq_len"]


@dataclass(frozen=True)
class Generation:
    """What one prompt gave.

    Attributes:
        tokens: the generated ids, ending with the stop token when one ended them.
        stop_reason: ``"stop_token"``, ``"max_new_tokens"``, or ``"max_seq_len"`` (the
            model's context was full).
        seconds: wall time of the generation, prompt included.
    """

    tokens: list[int]
    stop_reason: StopReason
    seconds: float

    @property
    def tokens_per_second(self) -> float:
        return len(self.tokens) / self.seconds if self.seconds > 0 else 0.0


def _last_logits(model: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """Logits (b, vocab) of the last position (a chunked-output model is handled too)."""
    out = model(tokens)
    last = out[-1] if isinstance(out, list) else out
    return last[:, -1]


@torch.no_grad()
def generate(
    model: nn.Module,
    prompt: Sequence[int],
    *,
    max_new_tokens: int,
    stop_tokens: Collection[int],
    temperature: float = 0.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
) -> Generation:
    """Generate up to `max_new_tokens` after `prompt`, stopping at any of `stop_tokens`.

    With caches set up (``model.setup_caches(...)``) the prompt is fed once and then each new
    token alone; without, the whole sequence is fed at every step. Both give the same
    tokens. The model is used as it is (call ``model.eval()`` first for dropout).

    Args:
        model: A :class:`~raytune_chat.modules.TransformerDecoder`.
        prompt: Token ids of the prompt (e.g. a chat prompt ending in the assistant header).
        max_new_tokens: Most tokens to generate.
        stop_tokens: Ids that end the generation (included in the result).
        temperature: 0 for greedy; see :func:`sample_next_token`.
        top_k: 1 for greedy; see :func:`sample_next_token`.
        generator: Seeded random generator for sampling.

    Returns:
        The :class:`Generation`.

    Example:
        >>> from raytune_chat.models.llama3 import llama3
        >>> _ = torch.manual_seed(0)
        >>> model = llama3(vocab_size=32, num_layers=1, num_heads=2, num_kv_heads=1,
        ...                embed_dim=8, max_seq_len=16).eval()
        >>> plain = generate(model, [1, 2, 3], max_new_tokens=4, stop_tokens=[0])
        >>> model.setup_caches(batch_size=1, dtype=torch.float32)
        >>> cached = generate(model, [1, 2, 3], max_new_tokens=4, stop_tokens=[0])
        >>> cached.tokens == plain.tokens, len(plain.tokens) <= 4
        (True, True)
    """
    start = time.perf_counter()
    device = next(model.parameters()).device
    cached = model.caches_are_enabled()
    if cached:
        model.reset_caches()
    sequence = torch.tensor([list(prompt)], device=device)  # (1, s)
    feed = sequence
    generated: list[int] = []
    stop_set = set(stop_tokens)
    reason: StopReason = "max_new_tokens"
    while len(generated) < max_new_tokens:
        if sequence.shape[1] > model.max_seq_len:  # no position left for the next token
            reason = "max_seq_len"
            break
        logits = _last_logits(model, feed)
        token = sample_next_token(logits, temperature=temperature, top_k=top_k, generator=generator)
        generated.append(int(token))
        if generated[-1] in stop_set:
            reason = "stop_token"
            break
        sequence = torch.cat([sequence, token[:, None]], dim=1)
        feed = token[:, None] if cached else sequence
    return Generation(generated, reason, time.perf_counter() - start)

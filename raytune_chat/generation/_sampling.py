"""Choose the next token from the last position's logits: greedy, or sampled with temperature
and top-k (torchtune's `generate` semantics)."""

from __future__ import annotations

import torch

__all__ = ["is_greedy", "sample_next_token"]


def is_greedy(temperature: float, top_k: int | None) -> bool:
    """Greedy decoding is asked for by ``temperature: 0`` or ``top_k: 1``.

    Example:
        >>> is_greedy(0.0, None), is_greedy(0.6, 1), is_greedy(0.6, 300)
        (True, True, False)
    """
    return temperature == 0 or top_k == 1


def sample_next_token(
    logits: torch.Tensor,
    *,
    temperature: float = 0.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The next token of each row from its logits (b, vocab); returns (b,) ids.

    Greedy (the argmax) when :func:`is_greedy`; otherwise the logits are divided by
    ``temperature``, cut to the ``top_k`` largest (all when None) and sampled with
    ``generator`` (seed it for a reproducible draw).

    Example:
        >>> logits = torch.tensor([[0.1, 2.0, 0.3]])
        >>> sample_next_token(logits).tolist()
        [1]
        >>> g = torch.Generator().manual_seed(0)
        >>> sample_next_token(logits, temperature=1.0, top_k=2, generator=g).item() in (1, 2)
        True
    """
    if is_greedy(temperature, top_k):
        return logits.argmax(dim=-1)
    scaled = logits.float() / temperature
    if top_k is not None and top_k < scaled.shape[-1]:
        kth = scaled.topk(top_k, dim=-1).values[..., -1:]  # (b, 1)
        scaled = scaled.masked_fill(scaled < kth, float("-inf"))
    probs = torch.softmax(scaled, dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(-1)

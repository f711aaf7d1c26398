"""Decoder-only transformer: embedding, a stack of pre-norm blocks, final norm, LM head."""

from __future__ import annotations

import torch
from torch import nn

from raytune_chat.modules.attention import MultiHeadAttention
from raytune_chat.modules.attention_utils import AttentionMask

__all__ = ["TransformerSelfAttentionLayer", "TransformerDecoder", "TiedLinear"]


class TransformerSelfAttentionLayer(nn.Module):
    """Pre-norm block: ``h = x + attn(sa_norm(x))``; ``out = h + mlp(mlp_norm(h))``.

    Args:
        attn: The self-attention module.
        mlp: The feed-forward module.
        sa_norm: Norm applied before attention.
        mlp_norm: Norm applied before the feed-forward.

    Example:
        >>> from raytune_chat.models.llama3 import llama3
        >>> model = llama3(vocab_size=32, num_layers=1, num_heads=2, num_kv_heads=1,
        ...                embed_dim=8, max_seq_len=16)
        >>> isinstance(model.layers[0], TransformerSelfAttentionLayer)
        True
    """

    def __init__(
        self, *, attn: MultiHeadAttention, mlp: nn.Module, sa_norm: nn.Module, mlp_norm: nn.Module
    ) -> None:
        super().__init__()
        self.attn = attn
        self.mlp = mlp
        self.sa_norm = sa_norm
        self.mlp_norm = mlp_norm

    def forward(
        self,
        x: torch.Tensor,
        *,
        mask: AttentionMask | None = None,
        input_pos: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Apply the block to ``x`` (b, s, embed_dim)."""
        h = x + self.attn(self.sa_norm(x), mask=mask, input_pos=input_pos)
        return h + self.mlp(self.mlp_norm(h))


class TiedLinear:
    """An LM head that reuses the token embedding matrix (tied weights).

    Deliberately not an ``nn.Module``: the weight is owned by the embedding, so the state dict
    holds it once, as ``tok_embeddings.weight`` (torchtune's convention).

    Args:
        tied_module: The ``nn.Embedding`` whose weight is shared.

    Example:
        >>> emb = nn.Embedding(10, 4)
        >>> TiedLinear(emb)(torch.zeros(1, 4)).shape
        torch.Size([1, 10])
    """

    def __init__(self, tied_module: nn.Embedding) -> None:
        self.tied_module = tied_module

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.tied_module.weight)


class TransformerDecoder(nn.Module):
    """Token ids in, next-token logits out.

    ``forward(tokens, mask=None, input_pos=None)`` returns logits (b, s, vocab) in the model's
    dtype, or, after :meth:`set_num_output_chunks`, a list of logits chunks split along the
    sequence (so the loss can upcast one chunk at a time).

    For generation, :meth:`setup_caches` gives every attention layer a KV cache (torchtune's
    names): each forward then appends its positions to the caches, so a prompt is fed once
    and each new token alone; positions continue from what the caches hold.

    Args:
        tok_embeddings: Token embedding.
        layers: The transformer blocks.
        max_seq_len: Longest sequence accepted.
        num_heads: Query heads per block (recorded for checkpoint conversion).
        head_dim: Head width (recorded for checkpoint conversion).
        norm: Final norm.
        output: LM head, an ``nn.Linear`` or a :class:`TiedLinear`.

    Example:
        >>> from raytune_chat.models.llama3 import llama3
        >>> model = llama3(vocab_size=32, num_layers=2, num_heads=4, num_kv_heads=2,
        ...                embed_dim=16, max_seq_len=64)
        >>> model(torch.tensor([[1, 2, 3]])).shape
        torch.Size([1, 3, 32])
    """

    def __init__(
        self,
        *,
        tok_embeddings: nn.Embedding,
        layers: list[TransformerSelfAttentionLayer],
        max_seq_len: int,
        num_heads: int,
        head_dim: int,
        norm: nn.Module,
        output: nn.Module | TiedLinear,
    ) -> None:
        super().__init__()
        self.tok_embeddings = tok_embeddings
        self.layers = nn.ModuleList(layers)
        self.max_seq_len = max_seq_len
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.norm = norm
        self.output = output
        self.num_output_chunks = 0

    def set_num_output_chunks(self, num_output_chunks: int) -> None:
        """Return logits as this many sequence chunks (0 = one tensor); pairs with the loss."""
        self.num_output_chunks = num_output_chunks

    def setup_caches(
        self, batch_size: int, dtype: torch.dtype, *, decoder_max_seq_len: int | None = None
    ) -> None:
        """Give each attention layer an empty KV cache of `decoder_max_seq_len` positions
        (default `max_seq_len`) for `batch_size` rows, on the model's device.

        Example:
            >>> from raytune_chat.models.llama3 import llama3
            >>> model = llama3(vocab_size=32, num_layers=1, num_heads=2, num_kv_heads=1,
            ...                embed_dim=8, max_seq_len=16)
            >>> model.setup_caches(batch_size=1, dtype=torch.float32)
            >>> model.caches_are_enabled(), model(torch.tensor([[1, 2]])).shape
            (True, torch.Size([1, 2, 32]))
            >>> model(torch.tensor([[3]])).shape  # the next token, at position 2
            torch.Size([1, 1, 32])
            >>> model.remove_caches(); model.caches_are_enabled()
            False
        """
        for layer in self.layers:
            layer.attn.setup_cache(batch_size, dtype, decoder_max_seq_len or self.max_seq_len)

    def caches_are_enabled(self) -> bool:
        """Whether forward reads and extends the KV caches."""
        return self.layers[0].attn.kv_cache is not None

    def reset_caches(self) -> None:
        """Empty the KV caches for a new prompt."""
        for layer in self.layers:
            layer.attn.reset_cache()

    def remove_caches(self) -> None:
        """Drop the KV caches: forward attends over its input alone again (training)."""
        for layer in self.layers:
            layer.attn.kv_cache = None

    def forward(
        self,
        tokens: torch.Tensor,
        *,
        mask: AttentionMask | None = None,
        input_pos: torch.Tensor | None = None,
    ) -> torch.Tensor | list[torch.Tensor]:
        """Compute logits for ``tokens`` (b, s).

        Args:
            tokens: (b, s) token ids.
            mask: None for causal attention over the whole row, or a block-causal mask from
                :func:`~raytune_chat.modules.attention_utils.packed_block_causal_mask`.
            input_pos: (b, s) positions for RoPE (restarting per packed conversation);
                default ``0..s-1``, or with caches the positions after those cached.

        Returns:
            Logits (b, s, vocab), or a list of (b, s_i, vocab) chunks.

        Raises:
            ValueError: If the sequence is longer than ``max_seq_len``.
        """
        b, s = tokens.shape
        start = self.layers[0].attn.kv_cache.size if self.caches_are_enabled() else 0
        if start + s > self.max_seq_len:
            raise ValueError(f"sequence length {start + s} exceeds max_seq_len={self.max_seq_len}")
        if start and input_pos is None:
            input_pos = torch.arange(start, start + s, device=tokens.device).expand(b, s)
        h = self.tok_embeddings(tokens)  # (b, s, embed_dim)
        for layer in self.layers:  # training.set_activation_checkpointing wraps each one
            h = layer(h, mask=mask, input_pos=input_pos)
        h = self.norm(h)
        if self.num_output_chunks:
            return [self.output(chunk) for chunk in h.chunk(self.num_output_chunks, dim=1)]
        return self.output(h)  # (b, s, vocab)

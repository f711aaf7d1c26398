"""General Llama3 builders: every shape is an argument; presets live in ``_model_builders``.

Llama 3.1, 3.2 and 3.3 use the same builders (``scale_factor``, ``tie_word_embeddings``).
"""

from __future__ import annotations

from collections.abc import Collection

from raytune_chat.models._builder import LoRASpec, decoder, lora_spec
from raytune_chat.modules import TransformerDecoder

__all__ = ["llama3", "lora_llama3"]


def llama3(
    *,
    vocab_size: int,
    num_layers: int,
    num_heads: int,
    num_kv_heads: int,
    embed_dim: int,
    max_seq_len: int,
    intermediate_dim: int | None = None,
    attn_dropout: float = 0.0,
    norm_eps: float = 1e-5,
    rope_base: float = 500_000.0,
    scale_factor: float | None = None,
    tie_word_embeddings: bool = False,
) -> TransformerDecoder:
    """Build a Llama3-family decoder with torchtune's parameter names.

    Args:
        vocab_size: Vocabulary size.
        num_layers: Number of transformer blocks.
        num_heads: Query heads.
        num_kv_heads: Key/value heads (grouped-query attention when < ``num_heads``).
        embed_dim: Model width; the head width is ``embed_dim // num_heads``.
        max_seq_len: Longest sequence the model accepts.
        intermediate_dim: MLP width; default ``2/3 * 4 * embed_dim`` rounded up to 256.
        attn_dropout: Attention dropout while training.
        norm_eps: RMSNorm epsilon.
        rope_base: RoPE theta.
        scale_factor: Llama 3.1 RoPE scaling factor (8 for 3.1, 32 for 3.2); None = plain RoPE.
        tie_word_embeddings: Share the LM head with the token embedding (Llama 3.2 1B/3B).

    Returns:
        The model; call it as ``model(tokens, mask=None, input_pos=None)``.

    Example:
        >>> import torch
        >>> model = llama3(vocab_size=64, num_layers=2, num_heads=4, num_kv_heads=2,
        ...                embed_dim=32, max_seq_len=128)
        >>> model(torch.tensor([[1, 2, 3]])).shape
        torch.Size([1, 3, 64])

        In YAML::

            model:
              _component_: raytune_chat.models.llama3.llama3
              vocab_size: 128256
              num_layers: 2
              num_heads: 4
              num_kv_heads: 2
              embed_dim: 64
              max_seq_len: 512
    """
    return decoder(
        vocab_size=vocab_size,
        num_layers=num_layers,
        num_heads=num_heads,
        num_kv_heads=num_kv_heads,
        embed_dim=embed_dim,
        max_seq_len=max_seq_len,
        intermediate_dim=intermediate_dim,
        attn_dropout=attn_dropout,
        norm_eps=norm_eps,
        rope_base=rope_base,
        scale_factor=scale_factor,
        tie_word_embeddings=tie_word_embeddings,
        lora=LoRASpec(),
    )


def lora_llama3(
    *,
    lora_attn_modules: Collection[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    vocab_size: int,
    num_layers: int,
    num_heads: int,
    num_kv_heads: int,
    embed_dim: int,
    max_seq_len: int,
    intermediate_dim: int | None = None,
    attn_dropout: float = 0.0,
    norm_eps: float = 1e-5,
    rope_base: float = 500_000.0,
    scale_factor: float | None = None,
    tie_word_embeddings: bool = False,
    lora_rank: int,
    lora_alpha: float,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = False,
) -> TransformerDecoder:
    """Build a Llama3 decoder whose chosen projections are ``LoRALinear`` (or ``DoRALinear``).

    Base parameter names are those of :func:`llama3`, so base checkpoints load unchanged;
    adapters add ``<proj>.lora_a.weight`` / ``<proj>.lora_b.weight``.

    Args:
        lora_attn_modules: Subset of ``{"q_proj", "k_proj", "v_proj", "output_proj"}``.
        apply_lora_to_mlp: Also adapt ``w1``, ``w2``, ``w3``.
        apply_lora_to_output: Also adapt the LM head (not with tied embeddings).
        vocab_size: See :func:`llama3` for this and the other shape arguments.
        num_layers: Number of transformer blocks.
        num_heads: Query heads.
        num_kv_heads: Key/value heads.
        embed_dim: Model width.
        max_seq_len: Longest sequence the model accepts.
        intermediate_dim: MLP width.
        attn_dropout: Attention dropout while training.
        norm_eps: RMSNorm epsilon.
        rope_base: RoPE theta.
        scale_factor: Llama 3.1 RoPE scaling factor, or None.
        tie_word_embeddings: Share the LM head with the token embedding.
        lora_rank: LoRA rank.
        lora_alpha: LoRA alpha (update scaled by ``alpha / rank``).
        lora_dropout: Dropout on the adapters' input.
        use_dora: DoRA: adapters also learn a per-row ``magnitude`` (initialised from the
            loaded base weights by the recipe).
        quantize_base: QLoRA: every attention and MLP base weight is stored in NF4 (torchao,
            the ``qlora`` extra); the LM head and embeddings are not quantized, as in torchtune.

    Returns:
        The model; freeze the base with ``set_trainable_params(model, get_adapter_params(model))``.

    Raises:
        ValueError: For an unknown entry in ``lora_attn_modules``.

    Example:
        >>> model = lora_llama3(lora_attn_modules=["q_proj", "v_proj"], vocab_size=64,
        ...                     num_layers=1, num_heads=4, num_kv_heads=2, embed_dim=32,
        ...                     max_seq_len=128, lora_rank=4, lora_alpha=8)
        >>> type(model.layers[0].attn.q_proj).__name__
        'LoRALinear'

        In YAML::

            model:
              _component_: raytune_chat.models.llama3.lora_llama3
              lora_attn_modules: [q_proj, v_proj, output_proj]
              lora_rank: 8
              lora_alpha: 16
              vocab_size: 128256
              num_layers: 2
              num_heads: 4
              num_kv_heads: 2
              embed_dim: 64
              max_seq_len: 512
    """
    return decoder(
        vocab_size=vocab_size,
        num_layers=num_layers,
        num_heads=num_heads,
        num_kv_heads=num_kv_heads,
        embed_dim=embed_dim,
        max_seq_len=max_seq_len,
        intermediate_dim=intermediate_dim,
        attn_dropout=attn_dropout,
        norm_eps=norm_eps,
        rope_base=rope_base,
        scale_factor=scale_factor,
        tie_word_embeddings=tie_word_embeddings,
        lora=lora_spec(
            lora_attn_modules,
            apply_lora_to_mlp,
            apply_lora_to_output,
            lora_rank,
            lora_alpha,
            lora_dropout,
            use_dora,
            quantize_base,
        ),
    )

"""The one decoder builder every family's component builders call (torchtune's shapes).

Llama 2, Code Llama 2, Llama 3/3.1/3.2/3.3 and Mistral share one architecture: pre-norm
blocks of grouped-query attention with RoPE and a SwiGLU MLP. Families differ only in numbers
(vocabulary, RoPE base and scaling, tied embeddings), so they differ here only in arguments.
:class:`LoRASpec` decides what each projection is: ``nn.Linear``, ``LoRALinear``,
``DoRALinear`` or, for QLoRA, one of those with its frozen weight in NF4.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Collection
from dataclasses import dataclass

from torch import nn

from raytune_chat.modules import (
    FeedForward,
    Llama3ScaledRoPE,
    MultiHeadAttention,
    RMSNorm,
    RotaryPositionalEmbeddings,
    TiedLinear,
    TransformerDecoder,
    TransformerSelfAttentionLayer,
)
from raytune_chat.modules.low_precision import FrozenNF4Linear
from raytune_chat.modules.peft import DoRALinear, LoRALinear

__all__ = ["LoRASpec", "decoder", "lora_spec", "qlora_builder", "scale_hidden_dim_for_mlp"]

_LORA_ATTN_CHOICES = frozenset({"q_proj", "k_proj", "v_proj", "output_proj"})


@dataclass(frozen=True)
class LoRASpec:
    """Which projections carry LoRA/DoRA, with which hyper-parameters, and whether the
    frozen base weights are NF4 (QLoRA: every attention and MLP projection, as torchtune;
    the LM head and embeddings keep the run's dtype)."""

    modules: frozenset[str] = frozenset()
    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    use_dora: bool = False
    quantize_base: bool = False

    def linear(self, name: str, in_dim: int, out_dim: int, *, quantizable: bool = True):
        """Projection ``name``: an adapter layer if it carries LoRA, else a frozen linear."""
        quantize = self.quantize_base and quantizable
        if name in self.modules:
            adapter = DoRALinear if self.use_dora else LoRALinear
            return adapter(
                in_dim,
                out_dim,
                rank=self.rank,
                alpha=self.alpha,
                dropout=self.dropout,
                quantize_base=quantize,
            )
        if quantize:
            return FrozenNF4Linear(in_dim, out_dim)
        return nn.Linear(in_dim, out_dim, bias=False)


def lora_spec(
    lora_attn_modules: Collection[str],
    apply_lora_to_mlp: bool,
    apply_lora_to_output: bool,
    lora_rank: int,
    lora_alpha: float,
    lora_dropout: float,
    use_dora: bool,
    quantize_base: bool,
) -> LoRASpec:
    """The :class:`LoRASpec` of torchtune's ``lora_*`` builder arguments.

    Raises:
        ValueError: For an unknown entry in ``lora_attn_modules``.

    Example:
        >>> sorted(lora_spec(["q_proj"], True, False, 8, 16, 0.0, False, False).modules)
        ['q_proj', 'w1', 'w2', 'w3']
    """
    unknown = set(lora_attn_modules) - _LORA_ATTN_CHOICES
    if unknown:
        raise ValueError(
            f"unknown lora_attn_modules {sorted(unknown)}; choose from {sorted(_LORA_ATTN_CHOICES)}"
        )
    modules = set(lora_attn_modules)
    if apply_lora_to_mlp:
        modules |= {"w1", "w2", "w3"}
    if apply_lora_to_output:
        modules.add("output")
    return LoRASpec(
        frozenset(modules), lora_rank, lora_alpha, lora_dropout, use_dora, quantize_base
    )


def scale_hidden_dim_for_mlp(dim: int, multiple_of: int = 256) -> int:
    """Llama's default MLP width: ``2/3 * 4 * dim`` rounded up to ``multiple_of``.

    Example:
        >>> scale_hidden_dim_for_mlp(4096)
        11008
    """
    hidden_dim = int(2 * (4 * dim) / 3)
    return multiple_of * ((hidden_dim + multiple_of - 1) // multiple_of)


def _rope(*, head_dim: int, max_seq_len: int, rope_base: float, scale_factor: float | None):
    if scale_factor is None:
        return RotaryPositionalEmbeddings(dim=head_dim, max_seq_len=max_seq_len, base=rope_base)
    return Llama3ScaledRoPE(
        dim=head_dim, max_seq_len=max_seq_len, base=rope_base, scale_factor=scale_factor
    )


def _layer(
    *,
    embed_dim: int,
    num_heads: int,
    num_kv_heads: int,
    head_dim: int,
    hidden_dim: int,
    attn_dropout: float,
    norm_eps: float,
    rope: RotaryPositionalEmbeddings,
    lora: LoRASpec,
) -> TransformerSelfAttentionLayer:
    attn = MultiHeadAttention(
        embed_dim=embed_dim,
        num_heads=num_heads,
        num_kv_heads=num_kv_heads,
        head_dim=head_dim,
        q_proj=lora.linear("q_proj", embed_dim, num_heads * head_dim),
        k_proj=lora.linear("k_proj", embed_dim, num_kv_heads * head_dim),
        v_proj=lora.linear("v_proj", embed_dim, num_kv_heads * head_dim),
        output_proj=lora.linear("output_proj", num_heads * head_dim, embed_dim),
        pos_embeddings=rope,
        attn_dropout=attn_dropout,
    )
    mlp = FeedForward(
        gate_proj=lora.linear("w1", embed_dim, hidden_dim),
        down_proj=lora.linear("w2", hidden_dim, embed_dim),
        up_proj=lora.linear("w3", embed_dim, hidden_dim),
    )
    return TransformerSelfAttentionLayer(
        attn=attn,
        mlp=mlp,
        sa_norm=RMSNorm(embed_dim, eps=norm_eps),
        mlp_norm=RMSNorm(embed_dim, eps=norm_eps),
    )


def decoder(
    *,
    vocab_size: int,
    num_layers: int,
    num_heads: int,
    num_kv_heads: int,
    embed_dim: int,
    max_seq_len: int,
    intermediate_dim: int | None,
    attn_dropout: float,
    norm_eps: float,
    rope_base: float,
    scale_factor: float | None = None,
    tie_word_embeddings: bool = False,
    lora: LoRASpec = LoRASpec(),
) -> TransformerDecoder:
    """A decoder of the given shape; ``lora`` picks each projection's layer type.

    Example:
        >>> model = decoder(vocab_size=32, num_layers=1, num_heads=2, num_kv_heads=1,
        ...                 embed_dim=8, max_seq_len=16, intermediate_dim=None,
        ...                 attn_dropout=0.0, norm_eps=1e-5, rope_base=10_000.0)
        >>> model.layers[0].mlp.w1.out_features
        256
    """
    head_dim = embed_dim // num_heads
    rope = _rope(
        head_dim=head_dim, max_seq_len=max_seq_len, rope_base=rope_base, scale_factor=scale_factor
    )
    layers = [
        _layer(
            embed_dim=embed_dim,
            num_heads=num_heads,
            num_kv_heads=num_kv_heads,
            head_dim=head_dim,
            hidden_dim=intermediate_dim or scale_hidden_dim_for_mlp(embed_dim),
            attn_dropout=attn_dropout,
            norm_eps=norm_eps,
            rope=rope,
            lora=lora,
        )
        for _ in range(num_layers)
    ]
    tok_embeddings = nn.Embedding(vocab_size, embed_dim)
    if tie_word_embeddings:
        if "output" in lora.modules:
            raise ValueError("apply_lora_to_output is not supported with tied embeddings")
        output: nn.Module | TiedLinear = TiedLinear(tok_embeddings)
    else:
        # The LM head stays in the run's dtype under QLoRA, as in torchtune.
        output = lora.linear("output", embed_dim, vocab_size, quantizable=False)
    return TransformerDecoder(
        tok_embeddings=tok_embeddings,
        layers=layers,
        max_seq_len=max_seq_len,
        num_heads=num_heads,
        head_dim=head_dim,
        norm=RMSNorm(embed_dim, eps=norm_eps),
        output=output,
    )


def qlora_builder(
    lora_builder: Callable[..., TransformerDecoder],
) -> Callable[..., TransformerDecoder]:
    """``qlora_<name>``: ``lora_<name>`` with ``quantize_base=True`` by default (torchtune's
    ``partial``), with a real signature so a YAML section is checked against it.

    Example:
        >>> from raytune_chat.models.llama3 import lora_llama3_8b
        >>> q = qlora_builder(lora_llama3_8b)
        >>> q.__name__, inspect.signature(q).parameters["quantize_base"].default
        ('qlora_llama3_8b', True)
    """

    @functools.wraps(lora_builder)
    def builder(*args, **kwargs) -> TransformerDecoder:
        kwargs.setdefault("quantize_base", True)
        return lora_builder(*args, **kwargs)

    signature = inspect.signature(lora_builder)
    params = [
        p.replace(default=True) if p.name == "quantize_base" else p
        for p in signature.parameters.values()
    ]
    builder.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    name = lora_builder.__name__.removeprefix("lora_")
    family = lora_builder.__module__.rsplit("._", 1)[0]  # the public package
    builder.__name__ = builder.__qualname__ = f"qlora_{name}"
    builder.__doc__ = (
        f"{name} with QLoRA: :func:`lora_{name}` whose frozen base weights are NF4 "
        "(``quantize_base=True``); same arguments, same PEFT adapter.\n\n"
        f"In YAML: ``model: {{_component_: {family}.qlora_{name}, "
        "lora_attn_modules: [q_proj, v_proj]}}``\n"
    )
    return builder

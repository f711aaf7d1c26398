"""State-dict key conversion between torchtune names and Meta / Hugging Face / PEFT names.

Each format is one declarative table from its names to torchtune's, ``{}`` standing for the
layer index. Hugging Face checkpoints also store q/k projections in the half-split RoPE
layout, so those rows are permuted to Meta's interleaved layout (and back).

Conversions work key by key, so a checkpointer can convert one shard while the next is
still on disk.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import torch

__all__ = [
    "get_mapped_key",
    "meta_to_tune",
    "tune_to_meta",
    "hf_to_tune",
    "hf_rows_to_tune",
    "hf_key_to_tune",
    "tune_to_hf",
    "tune_to_peft_adapter_weights",
    "tune_to_peft_adapter_config",
    "peft_to_tune_adapter_weights",
]

# Meta (consolidated.00.pth) -> torchtune
_FROM_META: dict[str, str | None] = {
    "tok_embeddings.weight": "tok_embeddings.weight",
    "norm.weight": "norm.scale",
    "output.weight": "output.weight",
    "rope.freqs": None,
    "layers.{}.attention.wq.weight": "layers.{}.attn.q_proj.weight",
    "layers.{}.attention.wk.weight": "layers.{}.attn.k_proj.weight",
    "layers.{}.attention.wv.weight": "layers.{}.attn.v_proj.weight",
    "layers.{}.attention.wo.weight": "layers.{}.attn.output_proj.weight",
    "layers.{}.attention_norm.weight": "layers.{}.sa_norm.scale",
    "layers.{}.ffn_norm.weight": "layers.{}.mlp_norm.scale",
    "layers.{}.feed_forward.w1.weight": "layers.{}.mlp.w1.weight",
    "layers.{}.feed_forward.w2.weight": "layers.{}.mlp.w2.weight",
    "layers.{}.feed_forward.w3.weight": "layers.{}.mlp.w3.weight",
}

# Hugging Face transformers (LlamaForCausalLM) -> torchtune
_FROM_HF: dict[str, str | None] = {
    "model.embed_tokens.weight": "tok_embeddings.weight",
    "model.norm.weight": "norm.scale",
    "lm_head.weight": "output.weight",
    "model.layers.{}.self_attn.rotary_emb.inv_freq": None,
    "model.layers.{}.self_attn.q_proj.weight": "layers.{}.attn.q_proj.weight",
    "model.layers.{}.self_attn.k_proj.weight": "layers.{}.attn.k_proj.weight",
    "model.layers.{}.self_attn.v_proj.weight": "layers.{}.attn.v_proj.weight",
    "model.layers.{}.self_attn.o_proj.weight": "layers.{}.attn.output_proj.weight",
    "model.layers.{}.input_layernorm.weight": "layers.{}.sa_norm.scale",
    "model.layers.{}.post_attention_layernorm.weight": "layers.{}.mlp_norm.scale",
    "model.layers.{}.mlp.gate_proj.weight": "layers.{}.mlp.w1.weight",
    "model.layers.{}.mlp.down_proj.weight": "layers.{}.mlp.w2.weight",
    "model.layers.{}.mlp.up_proj.weight": "layers.{}.mlp.w3.weight",
}

# torchtune module names -> PEFT ``target_modules`` (Hugging Face module names)
_TO_PEFT_TARGET_MODULES: dict[str, str] = {
    "q_proj": "q_proj",
    "k_proj": "k_proj",
    "v_proj": "v_proj",
    "output_proj": "o_proj",
    "w1": "gate_proj",
    "w2": "down_proj",
    "w3": "up_proj",
    "output": "lm_head",
}

# torchtune adapter parameter names -> PEFT's (DoRA's magnitude is a bare vector in both)
_TO_PEFT_LORA: dict[str, str] = {
    "lora_a.weight": "lora_A.weight",
    "lora_b.weight": "lora_B.weight",
    "magnitude": "lora_magnitude_vector",
}
# PEFT adapter entries whose rows are head outputs, so q/k rows are RoPE-permuted
_PEFT_ROWS = (".lora_B.", ".lora_magnitude_vector")

_PEFT_PREFIX = "base_model.model."
_LAYER_INDEX = re.compile(r"\.(\d+)\.")


def get_mapped_key(key: str, table: Mapping[str, str | None]) -> str | None:
    """Look ``key`` up in a conversion table, substituting the layer index for ``{}``.

    Args:
        key: A state-dict key, e.g. ``"layers.3.attention.wq.weight"``.
        table: A conversion table (source name -> target name, None = drop).

    Returns:
        The converted key, or None if the table drops it.

    Raises:
        KeyError: If the key is not in the table (naming the key).

    Example:
        >>> get_mapped_key("layers.3.attention.wq.weight", _FROM_META)
        'layers.3.attn.q_proj.weight'
    """
    match = _LAYER_INDEX.search(key)
    abstract = _LAYER_INDEX.sub(".{}.", key, count=1) if match else key
    if abstract not in table:
        raise KeyError(
            f"unexpected checkpoint key {key!r}: is checkpoint_files in the right format?"
        )
    target = table[abstract]
    if target is None or match is None:
        return target
    return target.format(match.group(1))


def _invert(table: Mapping[str, str | None]) -> dict[str, str]:
    return {v: k for k, v in table.items() if v is not None}


def _convert(
    state_dict: Mapping[str, Any],
    table: Mapping[str, str | None],
    permute: Callable[[str, torch.Tensor], torch.Tensor] | None = None,
) -> dict[str, Any]:
    """Rename every key through ``table`` (dropping None targets), then ``permute(new_key, v)``."""
    out = {}
    for key, value in state_dict.items():
        new_key = get_mapped_key(key, table)
        if new_key is not None:
            out[new_key] = permute(new_key, value) if permute else value
    return out


def meta_to_tune(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename Meta-format keys to torchtune's (``rope.freqs`` is dropped).

    Example:
        >>> list(meta_to_tune({"norm.weight": torch.ones(2)}))
        ['norm.scale']
    """
    return _convert(state_dict, _FROM_META)


def tune_to_meta(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename torchtune keys to Meta's.

    Example:
        >>> list(tune_to_meta({"layers.0.sa_norm.scale": torch.ones(2)}))
        ['layers.0.attention_norm.weight']
    """
    return _convert(state_dict, _invert(_FROM_META))


def _rope_permute(t: torch.Tensor, n_heads: int, head_dim: int, *, to_hf: bool) -> torch.Tensor:
    """Reorder each head's rows between Meta's interleaved and HF's half-split RoPE layout.

    Works on any tensor whose rows are head outputs: weights (out, in), LoRA B (out, rank)
    or DoRA's magnitude (out,).
    """
    if t.dim() == 1:
        return _rope_permute(t.unsqueeze(-1), n_heads, head_dim, to_hf=to_hf).squeeze(-1)
    cols = t.shape[-1]
    if to_hf:  # row (h, j, c) -> (h, c, j)
        grouped = t.view(n_heads, head_dim // 2, 2, cols)
    else:  # row (h, c, j) -> (h, j, c)
        grouped = t.view(n_heads, 2, head_dim // 2, cols)
    return grouped.transpose(1, 2).reshape(n_heads * head_dim, cols)


def _rope_rows(
    *,
    num_heads: int,
    num_kv_heads: int,
    dim: int,
    head_dim: int | None,
    to_hf: bool,
    only: tuple[str, ...] = ("",),
) -> Callable[[str, torch.Tensor], torch.Tensor]:
    """A ``permute`` for :func:`_convert` that reorders q/k rows (of keys containing one of
    ``only``)."""
    head_dim = head_dim or dim // num_heads

    def permute(key: str, value: torch.Tensor) -> torch.Tensor:
        if not any(part in key for part in only):
            return value
        if "q_proj" in key:
            return _rope_permute(value, num_heads, head_dim, to_hf=to_hf)
        if "k_proj" in key:
            return _rope_permute(value, num_kv_heads, head_dim, to_hf=to_hf)
        return value

    return permute


def hf_to_tune(
    state_dict: Mapping[str, torch.Tensor],
    *,
    num_heads: int,
    num_kv_heads: int,
    dim: int,
    head_dim: int | None = None,
) -> dict[str, torch.Tensor]:
    """Rename HF keys to torchtune's and un-permute q/k rows to the interleaved RoPE layout.

    Args:
        state_dict: HF-format tensors (one shard or all).
        num_heads: ``num_attention_heads`` from ``config.json``.
        num_kv_heads: ``num_key_value_heads``.
        dim: ``hidden_size``.
        head_dim: ``head_dim`` if set, else ``dim // num_heads``.

    Returns:
        torchtune-format tensors.

    Example:
        >>> sd = hf_to_tune({"model.norm.weight": torch.ones(4)}, num_heads=2,
        ...                 num_kv_heads=1, dim=4)
        >>> list(sd)
        ['norm.scale']
    """
    permute = _rope_rows(
        num_heads=num_heads, num_kv_heads=num_kv_heads, dim=dim, head_dim=head_dim, to_hf=False
    )
    return _convert(state_dict, _FROM_HF, permute)


def hf_key_to_tune(key: str) -> str | None:
    """The torchtune name of HF key `key` (None for entries torchtune drops).

    Example:
        >>> hf_key_to_tune("model.layers.2.self_attn.o_proj.weight")
        'layers.2.attn.output_proj.weight'
    """
    return get_mapped_key(key, _FROM_HF)


def hf_rows_to_tune(
    key: str,
    read_rows: Callable[[int, int], torch.Tensor],
    start: int,
    stop: int,
    *,
    num_heads: int,
    num_kv_heads: int,
    dim: int,
    head_dim: int | None = None,
) -> torch.Tensor:
    """Rows ``[start, stop)`` of the torchtune tensor that HF tensor `key` converts to.

    ``read_rows(a, b)`` returns the HF tensor's rows ``[a, b)``. Rows of other tensors are
    the same in both layouts; q/k rows are permuted within each head, so the whole heads
    covering the rows are read, un-permuted, and the asked rows cut out.

    Example:
        >>> w = torch.arange(8.0).view(4, 2)  # q_proj: 1 head of dim 4
        >>> full = hf_to_tune({"model.layers.0.self_attn.q_proj.weight": w}, num_heads=1,
        ...                   num_kv_heads=1, dim=4)["layers.0.attn.q_proj.weight"]
        >>> rows = hf_rows_to_tune("model.layers.0.self_attn.q_proj.weight",
        ...                        lambda a, b: w[a:b], 1, 3, num_heads=1, num_kv_heads=1, dim=4)
        >>> torch.equal(rows, full[1:3])
        True
    """
    head_dim = head_dim or dim // num_heads
    tune_key = hf_key_to_tune(key) or ""
    if not any(part in tune_key for part in ("q_proj", "k_proj")) or start >= stop:
        return read_rows(start, stop)
    first, last = start // head_dim, -(-stop // head_dim)
    block = read_rows(first * head_dim, last * head_dim)
    block = _rope_permute(block, last - first, head_dim, to_hf=False)
    return block[start - first * head_dim : stop - first * head_dim]


def tune_to_hf(
    state_dict: Mapping[str, torch.Tensor],
    *,
    num_heads: int,
    num_kv_heads: int,
    dim: int,
    head_dim: int | None = None,
) -> dict[str, torch.Tensor]:
    """Inverse of :func:`hf_to_tune`.

    Example:
        >>> sd = tune_to_hf({"norm.scale": torch.ones(4)}, num_heads=2, num_kv_heads=1, dim=4)
        >>> list(sd)
        ['model.norm.weight']
    """
    permute = _rope_rows(
        num_heads=num_heads, num_kv_heads=num_kv_heads, dim=dim, head_dim=head_dim, to_hf=True
    )
    return _convert(state_dict, _invert(_FROM_HF), permute)


def _peft_table() -> dict[str, str]:
    """torchtune adapter key -> PEFT adapter key, derived from the HF table."""
    table = {}
    for hf_key, tune_key in _FROM_HF.items():
        if tune_key is None or not tune_key.endswith(".weight"):
            continue
        for tune_name, peft_name in _TO_PEFT_LORA.items():
            source = tune_key.removesuffix("weight") + tune_name
            table[source] = _PEFT_PREFIX + hf_key.removesuffix("weight") + peft_name
    return table


def tune_to_peft_adapter_weights(
    state_dict: Mapping[str, torch.Tensor],
    *,
    num_heads: int,
    num_kv_heads: int,
    dim: int,
    head_dim: int | None = None,
) -> dict[str, torch.Tensor]:
    """Convert a torchtune adapter state dict to PEFT's names and layout.

    Keys become ``base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight`` and
    so on (DoRA's ``magnitude`` becomes ``lora_magnitude_vector``); the rows of q/k
    ``lora_B`` and the entries of their magnitudes are permuted like the base q/k weights
    (``lora_A`` acts on the input side and needs no change).

    Example:
        >>> sd = {"layers.0.attn.v_proj.lora_a.weight": torch.zeros(2, 4)}
        >>> list(tune_to_peft_adapter_weights(sd, num_heads=2, num_kv_heads=1, dim=4))
        ['base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight']
    """
    permute = _rope_rows(
        num_heads=num_heads,
        num_kv_heads=num_kv_heads,
        dim=dim,
        head_dim=head_dim,
        to_hf=True,
        only=_PEFT_ROWS,
    )
    return _convert(state_dict, _peft_table(), permute)


def peft_to_tune_adapter_weights(
    state_dict: Mapping[str, torch.Tensor],
    *,
    num_heads: int,
    num_kv_heads: int,
    dim: int,
    head_dim: int | None = None,
) -> dict[str, torch.Tensor]:
    """Inverse of :func:`tune_to_peft_adapter_weights`: a PEFT adapter (ours, or one `peft`
    wrote for a Llama) in torchtune's names and the interleaved RoPE layout.

    Raises:
        KeyError: naming a key that is no LoRA/DoRA entry of a Llama module.

    Example:
        >>> sd = {"base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight":
        ...       torch.zeros(2, 4)}
        >>> list(peft_to_tune_adapter_weights(sd, num_heads=2, num_kv_heads=1, dim=4))
        ['layers.0.attn.v_proj.lora_a.weight']
    """
    permute = _rope_rows(
        num_heads=num_heads,
        num_kv_heads=num_kv_heads,
        dim=dim,
        head_dim=head_dim,
        to_hf=False,
        only=(".lora_b.", ".magnitude"),
    )
    return _convert(state_dict, _invert(_peft_table()), permute)


def tune_to_peft_adapter_config(
    adapter_config: Mapping[str, Any], base_model_name_or_path: str | None = None
) -> dict[str, Any]:
    """Turn torchtune's adapter config into a PEFT ``adapter_config.json`` dict.

    Args:
        adapter_config: ``{"r", "lora_alpha", "target_modules", "peft_type"?, ...}`` with
            torchtune module names in ``target_modules``; ``"use_dora": True`` for DoRA.
        base_model_name_or_path: Recorded so ``peft`` / vLLM know the base model.

    Returns:
        The PEFT config with HF module names (``q_proj``, ``o_proj``, ``gate_proj``...).

    Raises:
        ValueError: If a required key is missing or a target module is unknown.

    Example:
        >>> cfg = tune_to_peft_adapter_config(
        ...     {"r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "output_proj", "w1"]})
        >>> cfg["target_modules"]
        ['q_proj', 'o_proj', 'gate_proj']
    """
    missing = [k for k in ("r", "lora_alpha", "target_modules") if k not in adapter_config]
    if missing:
        raise ValueError(f"adapter config lacks {missing}")
    unknown = [m for m in adapter_config["target_modules"] if m not in _TO_PEFT_TARGET_MODULES]
    if unknown:
        raise ValueError(f"unknown LoRA target modules {unknown}")
    return {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "bias": "none",
        "lora_dropout": 0.0,
        "base_model_name_or_path": base_model_name_or_path,
        **adapter_config,
        "target_modules": [_TO_PEFT_TARGET_MODULES[m] for m in adapter_config["target_modules"]],
    }

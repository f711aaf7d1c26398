"""Shared pieces of the recipe tests: a fast tiny model and small data files."""

from __future__ import annotations

import json
from pathlib import Path

from raytune_chat.config import asset_path

# A 1-layer Llama3-shaped model (full Llama3 vocabulary, which the cl100k stand-in needs).
TINY_MODEL = [
    "model=raytune_chat.models.llama3.lora_llama3",
    "model.vocab_size=128256",
    "model.num_layers=1",
    "model.num_heads=2",
    "model.num_kv_heads=1",
    "model.embed_dim=32",
    "model.intermediate_dim=64",
    "model.max_seq_len=128",
    "model.lora_attn_modules=[q_proj,v_proj,output_proj]",
    "model.lora_rank=4",
    "model.lora_alpha=8",
    "model.apply_lora_to_mlp=True",
    "model.apply_lora_to_output=True",
]


def fast_overrides(output_dir: Path, data_file: Path) -> list[str]:
    """Overrides that make the tiny CPU config take well under a second per step."""
    return [
        f"output_dir={output_dir}",
        f"dataset.data_files={data_file}",
        "tokenizer.max_seq_len=64",
        "batch_size=2",
        "log_every_n_steps=1",
        "ray.resources_per_worker={CPU: 0.5}",
        "loss.num_output_chunks=1",
        "dataset.num_workers=1",
        *TINY_MODEL,
    ]


def sample_conversations(n: int, *, skip: int = 0) -> list[dict]:
    """The first `n` conversations of the bundled sample (after `skip`)."""
    rows = json.loads(asset_path("sample_chat").read_text())
    return rows[skip : skip + n]


def write_chat_file(path: Path, rows: list[dict]) -> Path:
    path.write_text(json.dumps(rows))
    return path

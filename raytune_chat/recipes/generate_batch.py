"""`generate_batch`: answer every prompt of a JSONL file with Ray Data, one model per actor.

Run it as ``raytune-chat run generate_batch --config generation prompts_file=prompts.jsonl
output_file=answers.jsonl`` (every key of `generate`, plus `prompts_file`, `output_file` and
a `ray:` section sizing the actor pool). Each input line is ``{"prompt": ..., "system"?: ...}``
or ``{"messages": [{"role", "content"}, ...]}``; each output line, in input order, is
``{"line", "prompt", "completion", "stop_reason", "tokens", "num_prompt_tokens", "seconds",
"error"}`` (`tokens`: the generated ids, the stop token included).
A line that is not such a row gets an output line with its `error` and generation goes on.

The story: read the settings, size the pool to the cluster, stream the file's lines through
the actors (each builds the model once and answers its rows with the same plain-torch loop
as `generate`), write the answers as they arrive, print the totals.

Why a recipe of its own rather than `generate` with a prompts file: `generate` stays plain
torch on one machine (no Ray to start, what a user trying one prompt wants), and this one
owns what only a batch has: the pool, the input and output files, per-row errors.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pandas as pd
import ray
import ray.data
import torch

from raytune_chat.config import ConfigError
from raytune_chat.generation import (
    BatchGenerateSettings,
    ChatModel,
    PoolSettings,
    messages_from_prompt,
    parse_generate_settings,
)
from raytune_chat.training import ray_train

__all__ = ["GenerateRows", "recipe_main"]


def recipe_main(cfg: dict[str, Any]) -> dict[str, Any]:
    """Answer every line of `prompts_file` into `output_file`; return the totals.

    Raises:
        ConfigError: naming the key of an invalid config, before anything runs.
    """
    settings = _parse(cfg)
    start = time.perf_counter()
    ray_train.ensure_ray()
    num_actors = pool_size(settings.ray, ray.cluster_resources())
    # Output line i answers input line i: Ray Data keeps the order of the blocks.
    ray.data.DataContext.get_current().execution_options.preserve_order = True
    lines = ray.data.read_text(settings.prompts_file, drop_empty_lines=False)
    answers = lines.map_batches(
        GenerateRows,
        fn_constructor_kwargs={"cfg": cfg},
        batch_size=8,
        batch_format="pandas",
        compute=ray.data.ActorPoolStrategy(size=num_actors),
        num_cpus=settings.ray.cpus_per_actor,
        num_gpus=settings.ray.gpus_per_actor,
    )
    totals = {"prompts": 0, "stopped": 0, "errors": 0, "tokens": 0, "generation_seconds": 0.0}
    out = Path(settings.output_file)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w") as f:
        for line, row in enumerate(answers.iter_rows(), start=1):
            record = {"line": line, **_plain(row)}
            f.write(json.dumps(record) + "\n")
            totals["prompts"] += 1
            totals["stopped"] += record["stop_reason"] == "stop_token"
            totals["errors"] += record["error"] is not None
            totals["tokens"] += len(record["tokens"] or [])
            totals["generation_seconds"] += record["seconds"] or 0.0
    seconds = time.perf_counter() - start
    per_actor = totals["tokens"] / max(totals["generation_seconds"], 1e-9)
    print(
        f"raytune-chat: {totals['prompts']} prompts on {num_actors} actor(s) in {seconds:.1f} s "
        f"(start-up included; {per_actor:.1f} tokens/s per actor while generating); "
        f"{totals['stopped']} ended with a stop token, {totals['errors']} could not be read "
        f"(see `error`); answers in {out}",
        flush=True,
    )
    return {**totals, "num_actors": num_actors, "output_file": str(out), "seconds": seconds}


def _parse(cfg: dict[str, Any]) -> BatchGenerateSettings:
    settings = parse_generate_settings(cfg, BatchGenerateSettings)
    for key in ("prompts_file", "output_file"):
        if not getattr(settings, key):
            raise ConfigError(key, "is required: a JSONL file path")
    if "://" not in settings.prompts_file and not Path(settings.prompts_file).is_file():
        raise ConfigError("prompts_file", f"{settings.prompts_file} not found")
    if settings.device == "cuda" and settings.ray.gpus_per_actor <= 0:
        raise ConfigError("ray.gpus_per_actor", "device is cuda: give each actor a GPU (1)")
    if settings.ray.num_actors is not None and settings.ray.num_actors < 1:
        raise ConfigError("ray.num_actors", "must be at least 1 (or null: fit the cluster)")
    return settings


def pool_size(pool: PoolSettings, resources: dict[str, float]) -> int:
    """Actors to start: `num_actors`, or as many as the cluster's GPUs (or CPUs) hold.

    On CPU one CPU is left free for the tasks that read the prompts: actors holding every
    CPU would starve them and the run would hang.

    Example:
        >>> pool_size(PoolSettings(cpus_per_actor=0.5), {"CPU": 2.0})
        2
        >>> pool_size(PoolSettings(gpus_per_actor=1), {"CPU": 16.0, "GPU": 4.0})
        4
    """
    if pool.num_actors is not None:
        return pool.num_actors
    if pool.gpus_per_actor > 0:
        return max(1, int(resources.get("GPU", 0) // pool.gpus_per_actor))
    return max(1, int((resources.get("CPU", 1) - 1) // pool.cpus_per_actor))


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """A row from Ray Data as JSON: ints for numpy values, null for what an error row lacks.

    The stage fills error rows with "" and [] rather than None, so that every block has the
    same Arrow types."""
    error = row["error"] or None
    return {
        "prompt": row["prompt"] or None,
        "completion": None if error else row["completion"],
        "stop_reason": None if error else row["stop_reason"],
        "tokens": None if error else [int(t) for t in row["tokens"]],
        "num_prompt_tokens": None if error else int(row["num_prompt_tokens"]),
        "seconds": None if error else round(float(row["seconds"]), 4),
        "error": error,
    }


class GenerateRows:
    """The Ray Data stage: builds the tokenizer and model once, answers each line of a batch.

    Args:
        cfg: the resolved config (the same for every actor).
    """

    def __init__(self, cfg: dict[str, Any]) -> None:
        settings = parse_generate_settings(cfg, BatchGenerateSettings)
        # One thread per CPU the actor holds: more would fight the other actors for cores.
        torch.set_num_threads(max(1, round(settings.ray.cpus_per_actor)))
        self.chat_model = ChatModel(cfg, settings)

    def _answer(self, line: str) -> dict[str, Any]:
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ValueError("the line is not a JSON object")
            messages = messages_from_prompt(row)
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            error = f"not a prompt row: {exc}"
            return {"prompt": "", "completion": "", "stop_reason": "", "tokens": [],
                    "num_prompt_tokens": 0, "seconds": 0.0, "error": error}  # fmt: skip
        answer = self.chat_model.answer(messages)
        users = [m.text_content for m in messages if m.role == "user"]
        return {
            "prompt": users[-1] if users else "",
            "completion": answer.text,
            "stop_reason": answer.generation.stop_reason,
            "tokens": answer.generation.tokens,
            "num_prompt_tokens": len(answer.prompt),
            "seconds": answer.generation.seconds,
            "error": "",
        }

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame([self._answer(line) for line in batch["text"]])

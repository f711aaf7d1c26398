"""Checkpointers for Meta, Hugging Face and torchtune weight files (torchtune 0.6.1 API).

``load_checkpoint()`` returns ``{"model": torchtune-named state dict, ...}``; weights are read
one tensor at a time and converted before the next is read, so peak memory stays near the
model's size. ``save_checkpoint(state_dict, epoch)`` writes into ``output_dir/epoch_{epoch}``:

- the adapter as ``adapter_model.pt`` (torchtune names, for resuming) and as a PEFT adapter
  (``adapter_model.safetensors`` + ``adapter_config.json``, HF module names) loadable by
  ``peft`` and vLLM;
- unless ``adapter_only``, the full (merged) weights in the input's format in the subfolder
  ``model/``, with the checkpoint directory's other files (config, tokenizer). They are
  kept apart from the adapter on purpose: transformers' ``from_pretrained`` applies an
  ``adapter_config.json`` it finds next to the weights, which would add the already merged
  adapter a second time (torchtune 0.6.1 writes both into one folder).

Resuming is not the checkpointer's job here: a run resumes from its Ray Train checkpoint
(adapter, optimizer, schedule, data position), see `raytune_chat.training.ray_train`. The
torchtune arguments ``adapter_checkpoint`` and ``recipe_checkpoint`` are accepted as null so
torchtune configs load, and refused otherwise.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from raytune_chat.models import convert_weights
from raytune_chat.training.checkpointing._constants import (
    ADAPTER_CONFIG,
    ADAPTER_CONFIG_FNAME,
    ADAPTER_KEY,
    ADAPTER_MODEL_FNAME,
    MODEL_DIRNAME,
    MODEL_KEY,
    ModelType,
)
from raytune_chat.training.checkpointing._files import (
    iter_safetensor_slices,
    iter_weights,
    write_weights,
)

__all__ = [
    "FullModelHFCheckpointer",
    "FullModelMetaCheckpointer",
    "FullModelTorchTuneCheckpointer",
]

logger = logging.getLogger(__name__)

# rows_of(name, shape) -> the rows [start, stop) to read of that tensor, or None to skip it
RowsOf = Callable[[str, tuple[int, ...]], tuple[int, int] | None]

# The most elements one read of a tensor's rows holds (32 MB in bf16)
_PIECE_ELEMENTS = 16 * 2**20

RESUME_HINT = (
    "the checkpointer does not resume runs; a run resumes from its latest Ray Train "
    "checkpoint when rerun with the same ray.name and ray.storage_path: set it to null"
)

_WEIGHT_SUFFIXES = {".safetensors", ".bin", ".pt", ".pth"}
_INDEX_FILES = {"model.safetensors.index.json", "pytorch_model.bin.index.json"}
_SHARD_NAME = "model-{:05d}-of-{:05d}"


def _expand_checkpoint_files(checkpoint_files: list[str] | Mapping[str, str]) -> list[str]:
    """Accept a list, or torchtune's ``{"filename_format", "max_filename"}`` form."""
    if isinstance(checkpoint_files, Mapping):
        fmt, last = checkpoint_files["filename_format"], checkpoint_files["max_filename"]
        return [fmt.format(str(i).zfill(len(last)), last) for i in range(1, int(last) + 1)]
    return sorted(checkpoint_files)


class _Checkpointer:
    """Shared load/save flow; subclasses read and write the model weights of one format."""

    def __init__(
        self,
        checkpoint_dir: str | Path,
        checkpoint_files: list[str] | Mapping[str, str],
        model_type: str,
        output_dir: str | Path,
        adapter_checkpoint: str | None = None,
        recipe_checkpoint: str | None = None,
    ) -> None:
        if adapter_checkpoint is not None or recipe_checkpoint is not None:
            raise ValueError(f"adapter_checkpoint, recipe_checkpoint: {RESUME_HINT}")
        self._checkpoint_dir = Path(checkpoint_dir)
        self._output_dir = Path(output_dir)
        if self._output_dir.resolve().is_relative_to(self._checkpoint_dir.resolve()):
            raise ValueError(
                f"output_dir {output_dir} must not be inside checkpoint_dir {checkpoint_dir}"
            )
        self._output_dir.mkdir(parents=True, exist_ok=True)
        self._model_type = ModelType[model_type.upper()]
        self._checkpoint_paths = [
            self._checkpoint_dir / name for name in _expand_checkpoint_files(checkpoint_files)
        ]
        missing = [str(p) for p in self._checkpoint_paths if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"checkpoint files not found: {missing}")

    # -- format-specific hooks -------------------------------------------------------------

    def _iter_model(self) -> Iterator[tuple[str, torch.Tensor]]:
        """The model's weights with torchtune names, read and converted one at a time."""
        raise NotImplementedError

    def _save_model(self, model_sd: Mapping[str, torch.Tensor], model_dir: Path) -> None:
        raise NotImplementedError

    def _attention_shape(self) -> dict[str, int] | None:
        """``num_heads``, ``num_kv_heads``, ``dim`` (and ``head_dim``) for the PEFT layout."""
        config = self._checkpoint_dir / "config.json"
        if config.is_file():
            return _shape_from_hf_config(json.loads(config.read_text()))
        params = self._checkpoint_dir / "params.json"
        if params.is_file():
            return _shape_from_meta_params(json.loads(params.read_text()))
        return None

    def _base_model_name(self) -> str | None:
        repo_id = self._checkpoint_dir / "original_repo_id.json"
        if repo_id.is_file():
            return json.loads(repo_id.read_text()).get("repo_id")
        return str(self._checkpoint_dir)

    # -- public API ------------------------------------------------------------------------

    def iter_model_weights(self) -> Iterator[tuple[str, torch.Tensor]]:
        """Yield the base weights (torchtune names) one tensor at a time, file by file.

        Only the tensor being yielded is in memory (safetensors are read tensor by tensor,
        pickle files memory-mapped), so a loader that places each one into a model built on
        the meta device, or quantizes it to NF4 (QLoRA), never holds the whole checkpoint.
        With tied embeddings (``LLAMA3_2``) ``output.weight`` is skipped.
        """
        for key, value in self._iter_model():
            if self._model_type.ties_embeddings and key == "output.weight":
                continue
            yield key, value

    def iter_model_weight_rows(self, rows_of: RowsOf) -> Iterator[tuple[str, int, torch.Tensor]]:
        """Yield ``(name, offset, rows)``: the rows ``rows_of(name, shape)`` asks for of each
        base weight (torchtune names), in pieces (``offset``: where a piece starts in them),
        nothing for a tensor it answers None for.

        For FSDP, where each rank keeps only its own rows. Here each tensor is read whole,
        one at a time, and cut; Hugging Face safetensors read only the rows asked for.
        """
        for name, tensor in self.iter_model_weights():
            rows = rows_of(name, tuple(tensor.shape))
            if rows is not None:
                yield name, 0, tensor[rows[0] : rows[1]].clone()
            del tensor

    def load_checkpoint(self) -> dict[str, Any]:
        """Load the model weights (torchtune names) as one state dict.

        Returns:
            ``{"model": state_dict}``.
        """
        return {MODEL_KEY: dict(self.iter_model_weights())}

    def save_checkpoint(
        self,
        state_dict: Mapping[str, Any],
        epoch: int,
        adapter_only: bool = False,
    ) -> None:
        """Write the merged weights and the adapter of `epoch`.

        Args:
            state_dict: ``{"model": merged torchtune state dict (omit if adapter_only),
                "adapter": adapter state dict, "adapter_config": {"r", "lora_alpha",
                "target_modules", "peft_type"}}``; other keys are ignored. Not modified.
            epoch: Names the output folder ``epoch_{epoch}``.
            adapter_only: Skip the full weights.

        Raises:
            ValueError: If ``adapter_only`` but no adapter is given.
        """
        epoch_dir = self._output_dir / f"epoch_{epoch}"
        epoch_dir.mkdir(parents=True, exist_ok=True)
        if not adapter_only:
            model_dir = epoch_dir / MODEL_DIRNAME
            model_dir.mkdir(exist_ok=True)
            self._save_model(state_dict[MODEL_KEY], model_dir)
            self._copy_side_files(model_dir)
        if ADAPTER_KEY in state_dict:
            self._save_adapter(state_dict[ADAPTER_KEY], state_dict.get(ADAPTER_CONFIG), epoch_dir)
        elif adapter_only:
            raise ValueError("adapter_only=True but the state dict has no 'adapter' entry")

    def _save_adapter(
        self,
        adapter_sd: Mapping[str, torch.Tensor],
        adapter_config: Mapping[str, Any] | None,
        epoch_dir: Path,
    ) -> None:
        """``adapter_model.pt`` always; the PEFT pair when the head counts are known."""
        torch.save(dict(adapter_sd), epoch_dir / f"{ADAPTER_MODEL_FNAME}.pt")
        shape = self._attention_shape()
        if shape is None:
            logger.warning(
                "no config.json or params.json in %s: PEFT adapter not written, only %s.pt",
                self._checkpoint_dir,
                ADAPTER_MODEL_FNAME,
            )
            return
        peft_sd = convert_weights.tune_to_peft_adapter_weights(adapter_sd, **shape)
        write_weights(peft_sd, epoch_dir / f"{ADAPTER_MODEL_FNAME}.safetensors")
        if adapter_config is not None:
            config = convert_weights.tune_to_peft_adapter_config(
                adapter_config, base_model_name_or_path=self._base_model_name()
            )
            (epoch_dir / ADAPTER_CONFIG_FNAME).write_text(json.dumps(config, indent=2))

    def _copy_side_files(self, model_dir: Path) -> None:
        """Copy config/tokenizer files next to the weights so the folder is usable as is."""
        for path in self._checkpoint_dir.iterdir():
            if (
                path.is_file()
                and path.suffix not in _WEIGHT_SUFFIXES
                and path.name not in _INDEX_FILES
            ):
                shutil.copy2(path, model_dir / path.name)


def _shape_from_hf_config(config: Mapping[str, Any]) -> dict[str, int]:
    shape = {
        "num_heads": config["num_attention_heads"],
        "num_kv_heads": config.get("num_key_value_heads", config["num_attention_heads"]),
        "dim": config["hidden_size"],
    }
    if config.get("head_dim"):
        shape["head_dim"] = config["head_dim"]
    return shape


def _shape_from_meta_params(params: Mapping[str, Any]) -> dict[str, int]:
    return {
        "num_heads": params["n_heads"],
        "num_kv_heads": params.get("n_kv_heads") or params["n_heads"],
        "dim": params["dim"],
    }


class FullModelHFCheckpointer(_Checkpointer):
    """Hugging Face checkpoints: sharded ``*.safetensors`` or ``*.bin`` plus ``config.json``.

    q/k projection rows are permuted between HF's half-split and torchtune's interleaved
    RoPE layout on load and back on save. Merged weights are saved with the input's shard
    layout (``model-0000i-of-0000n``) and an index file; ``safe_serialization`` picks
    safetensors (default: same as the input files).

    Args:
        checkpoint_dir: Folder with the weights and ``config.json``.
        checkpoint_files: Shard file names, or ``{"filename_format", "max_filename"}``.
        model_type: ``"LLAMA3"``, ``"LLAMA3_2"`` (tied embeddings), ``"LLAMA2"``, ``"MISTRAL"``.
        output_dir: Where ``epoch_{n}`` folders go (not inside ``checkpoint_dir``).
        adapter_checkpoint: Accepted as null only (torchtune's key); runs resume from their
            Ray Train checkpoint.
        recipe_checkpoint: Accepted as null only (torchtune's key), likewise.
        safe_serialization: Save merged weights as safetensors; None = as the input.

    Example:
        >>> ckpt = FullModelHFCheckpointer(  # doctest: +SKIP
        ...     checkpoint_dir="/models/Meta-Llama-3-8B-Instruct",
        ...     checkpoint_files={"filename_format": "model-{}-of-{}.safetensors",
        ...                       "max_filename": "00004"},
        ...     model_type="LLAMA3", output_dir="/tmp/out")
        >>> model.load_state_dict(ckpt.load_checkpoint()["model"])  # doctest: +SKIP

        In YAML::

            checkpointer:
              _component_: raytune_chat.training.FullModelHFCheckpointer
              checkpoint_dir: /models/Meta-Llama-3-8B-Instruct
              checkpoint_files: [model-00001-of-00004.safetensors, ...]
              model_type: LLAMA3
              output_dir: /tmp/out
    """

    def __init__(
        self,
        checkpoint_dir: str | Path,
        checkpoint_files: list[str] | Mapping[str, str],
        model_type: str,
        output_dir: str | Path,
        adapter_checkpoint: str | None = None,
        recipe_checkpoint: str | None = None,
        safe_serialization: bool | None = None,
    ) -> None:
        super().__init__(
            checkpoint_dir,
            checkpoint_files,
            model_type,
            output_dir,
            adapter_checkpoint,
            recipe_checkpoint,
        )
        self._config = json.loads((self._checkpoint_dir / "config.json").read_text())
        if safe_serialization is None:
            safe_serialization = self._checkpoint_paths[0].suffix == ".safetensors"
        self._suffix = ".safetensors" if safe_serialization else ".bin"
        self._weight_map: dict[str, int] = {}

    def _attention_shape(self) -> dict[str, int]:
        return _shape_from_hf_config(self._config)

    def _iter_model(self) -> Iterator[tuple[str, torch.Tensor]]:
        shape = self._attention_shape()
        for index, path in enumerate(self._checkpoint_paths):
            for name, tensor in iter_weights(path):
                self._weight_map[name] = index  # merged weights are saved in the same shard
                yield from convert_weights.hf_to_tune({name: tensor}, **shape).items()

    def iter_model_weight_rows(self, rows_of: RowsOf) -> Iterator[tuple[str, int, torch.Tensor]]:
        """As the base class, but safetensors files are read slice by slice: only the rows
        asked for (whole heads for q/k, whose rows are permuted within each head), in
        pieces of at most `_PIECE_ELEMENTS` (so a rank's peak is its shard plus one piece)."""
        if any(path.suffix != ".safetensors" for path in self._checkpoint_paths):
            yield from super().iter_model_weight_rows(rows_of)
            return
        shape = self._attention_shape()
        for index, path in enumerate(self._checkpoint_paths):
            for hf_name, hf_shape, read_rows in iter_safetensor_slices(path):
                self._weight_map[hf_name] = index
                name = convert_weights.hf_key_to_tune(hf_name)
                if name is None or (self._model_type.ties_embeddings and name == "output.weight"):
                    continue
                rows = rows_of(name, hf_shape)
                if rows is None:
                    continue
                if "q_proj" in name or "k_proj" in name:  # whole heads, permuted: one piece
                    pieces = [rows]
                else:
                    step = max(1, _PIECE_ELEMENTS // max(1, math.prod(hf_shape[1:])))
                    pieces = [(a, min(a + step, rows[1])) for a in range(rows[0], rows[1], step)]
                for start, stop in pieces or [rows]:
                    piece = convert_weights.hf_rows_to_tune(
                        hf_name, read_rows, start, stop, **shape
                    )
                    yield name, start - rows[0], piece

    def _save_model(self, model_sd: Mapping[str, torch.Tensor], model_dir: Path) -> None:
        hf_sd = convert_weights.tune_to_hf(model_sd, **self._attention_shape())
        num_shards = max(len(self._checkpoint_paths), 1)
        shards: list[dict[str, torch.Tensor]] = [{} for _ in range(num_shards)]
        for key, tensor in hf_sd.items():
            shards[self._weight_map.get(key, num_shards - 1)][key] = tensor
        weight_map, total_size = {}, 0
        for index, shard in enumerate(shards):
            name = _SHARD_NAME.format(index + 1, num_shards) + self._suffix
            write_weights(shard, model_dir / name)
            weight_map.update(dict.fromkeys(shard, name))
            total_size += sum(t.numel() * t.element_size() for t in shard.values())
        index_name = (
            "model.safetensors.index.json"
            if self._suffix == ".safetensors"
            else "pytorch_model.bin.index.json"
        )
        index = {"metadata": {"total_size": total_size}, "weight_map": weight_map}
        (model_dir / index_name).write_text(json.dumps(index, indent=2))


class FullModelMetaCheckpointer(_Checkpointer):
    """Meta's original format: one ``consolidated.00.pth`` plus ``params.json``.

    Saves merged weights as ``epoch_{n}/model/consolidated.00.pth`` (Meta names) beside a copy of
    ``params.json``. The PEFT adapter uses the head counts from ``params.json``.

    Args:
        checkpoint_dir: Folder with ``consolidated.00.pth`` and ``params.json``.
        checkpoint_files: Exactly one file name.
        model_type: ``"LLAMA3"``, ``"LLAMA3_2"`` (tied embeddings), ...
        output_dir: Where ``epoch_{n}`` folders go (not inside ``checkpoint_dir``).
        adapter_checkpoint: Accepted as null only (torchtune's key); runs resume from their
            Ray Train checkpoint.
        recipe_checkpoint: Accepted as null only (torchtune's key), likewise.

    Raises:
        ValueError: If more than one checkpoint file is given.

    Example:
        >>> ckpt = FullModelMetaCheckpointer(  # doctest: +SKIP
        ...     checkpoint_dir="/models/Meta-Llama-3-8B-Instruct/original",
        ...     checkpoint_files=["consolidated.00.pth"], model_type="LLAMA3",
        ...     output_dir="/tmp/out")

        In YAML::

            checkpointer:
              _component_: raytune_chat.training.FullModelMetaCheckpointer
              checkpoint_dir: /models/Meta-Llama-3-8B-Instruct/original
              checkpoint_files: [consolidated.00.pth]
              model_type: LLAMA3
              output_dir: /tmp/out
    """

    def __init__(self, checkpoint_dir: str | Path, checkpoint_files: list[str], *args, **kwargs):
        if isinstance(checkpoint_files, Mapping) or len(checkpoint_files) != 1:
            raise ValueError(f"Meta checkpoints are read from one file, got {checkpoint_files}")
        super().__init__(checkpoint_dir, checkpoint_files, *args, **kwargs)

    def _iter_model(self) -> Iterator[tuple[str, torch.Tensor]]:
        for name, tensor in iter_weights(self._checkpoint_paths[0]):
            yield from convert_weights.meta_to_tune({name: tensor}).items()

    def _save_model(self, model_sd: Mapping[str, torch.Tensor], model_dir: Path) -> None:
        model_sd = dict(model_sd)
        if self._model_type.ties_embeddings and "output.weight" not in model_sd:
            model_sd["output.weight"] = model_sd["tok_embeddings.weight"]
        write_weights(convert_weights.tune_to_meta(model_sd), model_dir / "consolidated.00.pth")


class FullModelTorchTuneCheckpointer(_Checkpointer):
    """torchtune's own format: ``torch.save`` files with torchtune names, no conversion.

    Merged weights are saved as ``epoch_{n}/model/model-00001-of-00001.bin``. The PEFT adapter is
    written when ``checkpoint_dir`` also holds a ``config.json`` (HF) or ``params.json``
    (Meta) giving the head counts; otherwise only ``adapter_model.pt``.

    Args:
        checkpoint_dir: Folder with the weight files.
        checkpoint_files: File names (merged in order).
        model_type: ``"LLAMA3"``, ``"LLAMA3_2"`` (tied embeddings), ...
        output_dir: Where ``epoch_{n}`` folders go (not inside ``checkpoint_dir``).
        adapter_checkpoint: Accepted as null only (torchtune's key); runs resume from their
            Ray Train checkpoint.
        recipe_checkpoint: Accepted as null only (torchtune's key), likewise.

    Example:
        >>> import tempfile, torch
        >>> from raytune_chat.models.llama3 import llama3
        >>> model = llama3(vocab_size=64, num_layers=1, num_heads=2, num_kv_heads=1,
        ...                embed_dim=16, max_seq_len=32)
        >>> folder = tempfile.mkdtemp()
        >>> torch.save(model.state_dict(), f"{folder}/model.pt")
        >>> ckpt = FullModelTorchTuneCheckpointer(
        ...     checkpoint_dir=folder, checkpoint_files=["model.pt"],
        ...     model_type="LLAMA3", output_dir=tempfile.mkdtemp())
        >>> model.load_state_dict(ckpt.load_checkpoint()["model"])
        <All keys matched successfully>

        In YAML::

            checkpointer:
              _component_: raytune_chat.training.FullModelTorchTuneCheckpointer
              checkpoint_dir: /ckpts/tiny
              checkpoint_files: [model.pt]
              model_type: LLAMA3
              output_dir: /tmp/out
    """

    def _iter_model(self) -> Iterator[tuple[str, torch.Tensor]]:
        for path in self._checkpoint_paths:
            yield from iter_weights(path)

    def _save_model(self, model_sd: Mapping[str, torch.Tensor], model_dir: Path) -> None:
        write_weights(model_sd, model_dir / (_SHARD_NAME.format(1, 1) + ".bin"))

"""`ray.strategy: fsdp` (FSDP2) on a real local Ray cluster, 2 CPU workers (gloo).

One chain of runs on a tiny Hugging Face checkpoint: DDP as the reference; FSDP follows its
per-step losses and clipped gradient norms; an FSDP checkpoint resumes with 2 workers (same
losses as DDP's uninterrupted run) and loads exactly into a model sharded over 1 rank (the
restore a 1-worker run does, in this process: a third Ray run would cost the suite ~40 s);
the adapter FSDP writes has full shapes and loads with `peft`. Plus the row reads each FSDP
rank makes of a checkpoint, without Ray.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import shutil
from pathlib import Path

import pytest
import torch

from raytune_chat import training
from raytune_chat.config import load_config
from raytune_chat.models import convert_weights
from raytune_chat.models.llama3 import llama3
from raytune_chat.recipes import get_recipe
from raytune_chat.training import FullModelHFCheckpointer, _fsdp
from raytune_chat.training.checkpointing import _checkpointer
from raytune_chat.training.checkpointing._files import read_safetensors, write_safetensors
from raytune_chat.training.metric_logging import read_metrics
from tests.recipes._tiny import fast_overrides, sample_conversations, write_chat_file

# The TINY_MODEL shape of tests/recipes/_tiny.py: 2 heads of 16, 1 kv head.
SHAPE = dict(
    vocab_size=128256,
    num_layers=1,
    num_heads=2,
    num_kv_heads=1,
    embed_dim=32,
    intermediate_dim=64,
    max_seq_len=128,
)
HF_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "vocab_size": 128256,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "max_position_embeddings": 128,
    "rms_norm_eps": 1e-5,
    "rope_theta": 500000.0,
    "tie_word_embeddings": False,
}


def _hf_checkpoint(folder: Path) -> Path:
    """A tiny random Llama3 base in HF's format (model.safetensors + config.json)."""
    torch.manual_seed(7)
    base = llama3(**SHAPE)
    with torch.no_grad():  # norms away from 1, so a mixed-up shard of them would show
        for name, p in base.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
    hf = convert_weights.tune_to_hf(base.state_dict(), num_heads=2, num_kv_heads=1, dim=32)
    folder.mkdir(parents=True)
    write_safetensors(hf, folder / "model.safetensors")
    (folder / "config.json").write_text(json.dumps(HF_CONFIG))
    return folder


@pytest.fixture(scope="module")
def hf_base(tmp_path_factory) -> Path:
    return _hf_checkpoint(tmp_path_factory.mktemp("fsdp") / "hf")


def _rows(ckpt, rows_of) -> dict[str, torch.Tensor]:
    """The pieces `iter_model_weight_rows` yields, put together."""
    pieces: dict[str, list[tuple[int, torch.Tensor]]] = {}
    for name, offset, rows in ckpt.iter_model_weight_rows(rows_of):
        pieces.setdefault(name, []).append((offset, rows))
    out = {}
    for name, parts in pieces.items():
        assert [o for o, _ in parts] == list(
            itertools.accumulate([0] + [r.shape[0] for _, r in parts[:-1]])
        )
        out[name] = torch.cat([r for _, r in parts])
    return out


def test_each_rank_reads_exactly_its_rows_of_a_hf_checkpoint(hf_base, tmp_path, monkeypatch):
    """q/k rows are permuted within heads: rows cut mid-head still match the full load;
    large tensors come in pieces."""
    monkeypatch.setattr(_checkpointer, "_PIECE_ELEMENTS", 40_000)  # the embedding: 17 pieces
    ckpt = FullModelHFCheckpointer(hf_base, ["model.safetensors"], "LLAMA3", tmp_path / "out")
    full = dict(ckpt.iter_model_weights())
    for world in (2, 3):
        for rank in range(world):
            rows = _rows(ckpt, lambda n, shape, r=rank, w=world: _fsdp.shard_rows(shape[0], r, w))
            assert rows.keys() == full.keys()
            for name, tensor in full.items():
                start, stop = _fsdp.shard_rows(tensor.shape[0], rank, world)
                assert torch.equal(rows[name], tensor[start:stop]), (name, rank, world)
    pieces = [n for n, _, _ in ckpt.iter_model_weight_rows(lambda n, shape: (0, shape[0]))]
    assert (
        pieces.count("tok_embeddings.weight") > 1
        and pieces.count("layers.0.attn.q_proj.weight") == 1
    )
    skipped = _rows(ckpt, lambda n, shape: None if "attn" in n else (0, 1))
    assert skipped and not any("attn" in n for n in skipped)


def _overrides(out: Path, data: Path, hf_base: Path, *extra: str) -> list[str]:
    return [
        *fast_overrides(out, data),
        "checkpointer._component_=raytune_chat.training.FullModelHFCheckpointer",
        f"checkpointer.checkpoint_dir={hf_base}",
        "checkpointer.checkpoint_files=[model.safetensors]",
        "checkpointer.model_type=LLAMA3",
        f"checkpointer.output_dir={out}/ckpt",
        "save_adapter_weights_only=True",
        "ray.num_workers=2",
        "shuffle=False",
        "max_steps_per_epoch=3",
        "optimizer.lr=2e-2",
        "~lr_scheduler",  # constant: a run of 1 epoch resumed to 2 = a run of 2
        "clip_grad_norm=0.05",  # small enough that every step clips
        "save_every_n_steps=100",
        "log_peak_memory_stats=False",
        *extra,
    ]


VALIDATE = ("eval_generate_n=2", "eval_max_new_tokens=4")  # with the training rows as dataset_val


def _run(*overrides: str) -> list[dict]:
    """The run's training step records; with VALIDATE, its last validation and stop records
    after them."""
    cfg = load_config("tiny/llama3_lora_cpu", list(overrides))
    if "eval_generate_n=2" in overrides:
        cfg["dataset_val"] = dict(cfg["dataset"])
    get_recipe("lora_finetune_distributed")(cfg)
    records = read_metrics(Path(cfg["output_dir"]) / "metrics.jsonl")
    steps = [r for r in records if "loss" in r]
    return steps + [r for r in records if "val_loss" in r or "stop_share" in r][-2:]


def _peft_adapter(folder: Path) -> dict[str, torch.Tensor]:
    return read_safetensors(folder / "adapter_model.safetensors")


@pytest.mark.slow
def test_fsdp_follows_ddp_resumes_on_two_workers_and_one_and_peft_loads(
    ray_cluster, hf_base, tmp_path
):
    data = write_chat_file(tmp_path / "chat.json", sample_conversations(24, skip=200))
    ddp = _run(*_overrides(tmp_path / "ddp", data, hf_base, "epochs=2", *VALIDATE))
    ddp, ddp_end = ddp[:-2], ddp[-2:]
    fsdp = _run(*_overrides(tmp_path / "fsdp", data, hf_base, "epochs=1", "ray.strategy=fsdp"))
    assert [r["step"] for r in ddp] == list(range(1, 7)) and len(fsdp) == 3
    for ours, ref in zip(fsdp, ddp[:3], strict=False):
        assert ours["loss"] == pytest.approx(ref["loss"], rel=1e-4), (fsdp, ddp)
        # The norm over the whole model (all shards), as DDP's: clipping is global.
        assert ours["grad_norm"] == pytest.approx(ref["grad_norm"], rel=1e-4)
        assert ref["grad_norm"] > 0.05
    assert ddp[-1]["loss"] < ddp[0]["loss"]

    # Resume the FSDP run on 2 workers, to 2 epochs; its epoch-0 checkpoint on 1, below.
    saved = _epoch_checkpoint(tmp_path / "fsdp", step=3)
    shutil.copytree(saved, tmp_path / "epoch_0_checkpoint")
    two = _run(
        *_overrides(tmp_path / "fsdp", data, hf_base, "epochs=2", "ray.strategy=fsdp", *VALIDATE)
    )
    two, two_end = two[:-2], two[-2:]
    # The end of the run under FSDP, every rank in step: the validation loss, and the greedy
    # stop check that all ranks run together, as DDP's.
    assert two_end[0]["val_loss"] == pytest.approx(ddp_end[0]["val_loss"], rel=1e-4)
    assert two_end[0]["val_trained_tokens"] == ddp_end[0]["val_trained_tokens"] > 0
    assert two_end[1]["stop_share_n"] == ddp_end[1]["stop_share_n"] == 2
    assert two_end[1]["stop_share"] == ddp_end[1]["stop_share"]
    assert [r["step"] for r in two] == list(range(1, 7))
    assert all(r["resumed_from_step"] == 3 for r in two[3:])
    for ours, ref in zip(two[3:], ddp[3:], strict=True):  # adapter and AdamW state restored
        assert ours["loss"] == pytest.approx(ref["loss"], rel=1e-4), (two, ddp)
    _resume_on_one_worker(
        tmp_path / "epoch_0_checkpoint",
        _overrides(tmp_path / "one", data, hf_base),
        hf_base / "model.safetensors",
    )

    # The adapter: full shapes, the same as DDP's, and peft loads it onto the HF base.
    ours = _peft_adapter(tmp_path / "fsdp" / "ckpt" / "epoch_1")
    ref = _peft_adapter(tmp_path / "ddp" / "ckpt" / "epoch_1")
    assert ours.keys() == ref.keys()
    for name, tensor in ref.items():
        assert ours[name].shape == tensor.shape
        torch.testing.assert_close(ours[name], tensor, rtol=1e-3, atol=1e-5)
    _check_peft_loads(hf_base, tmp_path / "fsdp" / "ckpt" / "epoch_1", ours)


def _check_peft_loads(hf_base: Path, adapter_dir: Path, adapter: dict[str, torch.Tensor]) -> None:
    transformers = pytest.importorskip("transformers")
    peft = pytest.importorskip("peft")
    base = transformers.LlamaForCausalLM.from_pretrained(hf_base)
    model = peft.PeftModel.from_pretrained(base, adapter_dir)
    loaded = {k.replace(".default", ""): v for k, v in model.state_dict().items() if "lora_" in k}
    assert loaded.keys() == adapter.keys()
    for name, tensor in adapter.items():
        assert torch.equal(loaded[name], tensor), name


def _epoch_checkpoint(output_dir: Path, *, step: int) -> Path:
    """The Ray Train checkpoint folder of the step-`step` epoch-end report."""
    found = list((output_dir / "ray_results").glob(f"*/epoch_*_{step:07d}"))
    assert len(found) == 1, found
    return found[0]


def _resume_on_one_worker(checkpoint: Path, overrides: list[str], hf_file: Path) -> None:
    """Load a checkpoint 2 FSDP workers wrote into a model sharded over 1 rank (what a
    1-worker run's restore does), check it exactly, train a step from it, and write the
    merged weights from the gathered model."""
    cfg = load_config("tiny/llama3_lora_cpu", [*overrides, "ray.strategy=fsdp"])
    saved = torch.load(checkpoint / "train_state.pt", weights_only=True)
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{checkpoint.parent}/pg", rank=0, world_size=1
    )
    try:
        settings = training.parse_settings(cfg)
        cpu = torch.device("cpu")
        model, checkpointer = training.build_sharded_model(cfg, settings, cpu)
        optimizer = training.build_optimizer(cfg, model, cpu)
        schedule = training.build_lr_scheduler(cfg, optimizer, 6)
        position = training.load_train_state(checkpoint, model, optimizer, schedule)
        assert (position.global_step, position.epoch) == (3, 1)
        adapter = _fsdp.full_adapter_state(model)
        assert adapter.keys() == saved["adapter"].keys()
        for name, tensor in saved["adapter"].items():
            assert torch.equal(adapter[name], tensor), name
        moments = _fsdp.full_optimizer_state(model, optimizer)["state"]
        for name, state in saved["optimizer"]["state"].items():
            assert torch.equal(moments[name]["exp_avg_sq"], state["exp_avg_sq"]), name
            assert state["step"] == moments[name]["step"] == 3
        tokens = torch.arange(1, 17).view(2, 8)
        batch = {"tokens": tokens, "labels": tokens.roll(-1, dims=1)}
        loss_fn = training.build_loss(cfg, model, settings)
        stats = training.train_step(
            model, loss_fn, optimizer, schedule, [batch], device=cpu, clip_grad_norm=0.05
        )
        assert stats.grad_norm > 0 and _fsdp.full_optimizer_state(model, optimizer)["state"]
        after = _fsdp.full_adapter_state(model)
        assert any(not torch.equal(after[n], t) for n, t in saved["adapter"].items())
        # Merged weights are written from the gathered model: base + the trained adapter.
        merged = dataclasses.replace(settings, save_adapter_weights_only=False)
        state = training.final_output_state(model, checkpointer, merged)
        base = dict(checkpointer.iter_model_weights())
        assert all(torch.equal(state[name], tensor) for name, tensor in base.items())
        out = training.save_final_outputs(model, checkpointer, cfg, merged, epoch=9, state=state)
        written = read_safetensors(out / "model" / "model-00001-of-00001.safetensors")
        q_proj = "model.layers.0.self_attn.q_proj.weight"
        assert written[q_proj].shape == (32, 32)
        assert not torch.equal(written[q_proj], read_safetensors(hf_file)[q_proj])  # merged
    finally:
        torch.distributed.destroy_process_group()

"""Meta, HF and torchtune checkpointers: save -> load -> same logits, file layout, adapter."""

from __future__ import annotations

import json

import pytest
import safetensors.torch
import torch

from raytune_chat.models import convert_weights
from raytune_chat.models.llama3 import llama3, lora_llama3
from raytune_chat.modules.peft import get_adapter_params, get_adapter_state_dict
from raytune_chat.training import (
    FullModelHFCheckpointer,
    FullModelMetaCheckpointer,
    FullModelTorchTuneCheckpointer,
)
from raytune_chat.training.checkpointing._files import read_safetensors, write_safetensors

SHAPE = dict(vocab_size=53, num_layers=2, num_heads=4, num_kv_heads=2, embed_dim=32, max_seq_len=32)
HF_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 32,
    "intermediate_size": 48,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "num_hidden_layers": 2,
    "vocab_size": 53,
    "rms_norm_eps": 1e-5,
    "rope_theta": 500000.0,
    "tie_word_embeddings": False,
}
META_PARAMS = {"dim": 32, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "vocab_size": 53}
TOKENS = torch.arange(2 * 11).reshape(2, 11) % 53


def _model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = llama3(**SHAPE, intermediate_dim=48).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("scale"):
                p.uniform_(0.5, 1.5)
    return model


def _logits(state_dict) -> torch.Tensor:
    model = _model(seed=99)
    model.load_state_dict(state_dict, strict=True)
    with torch.no_grad():
        return model(TOKENS)


def _reference():
    model = _model(seed=0)
    with torch.no_grad():
        return {k: v.clone() for k, v in model.state_dict().items()}, model(TOKENS)


def test_meta_round_trip(tmp_path):
    sd, expected = _reference()
    ckpt_dir = tmp_path / "meta"
    ckpt_dir.mkdir()
    torch.save(convert_weights.tune_to_meta(sd), ckpt_dir / "consolidated.00.pth")
    (ckpt_dir / "params.json").write_text(json.dumps(META_PARAMS))
    ckpt = FullModelMetaCheckpointer(ckpt_dir, ["consolidated.00.pth"], "LLAMA3", tmp_path / "out")
    loaded = ckpt.load_checkpoint()["model"]
    torch.testing.assert_close(_logits(loaded), expected, rtol=0, atol=0)

    ckpt.save_checkpoint({"model": loaded}, epoch=0)
    written = torch.load(tmp_path / "out/epoch_0/model/consolidated.00.pth", weights_only=True)
    assert "layers.1.attention.wq.weight" in written and "norm.weight" in written
    assert json.loads((tmp_path / "out/epoch_0/model/params.json").read_text()) == META_PARAMS
    again = FullModelMetaCheckpointer(
        tmp_path / "out/epoch_0/model", ["consolidated.00.pth"], "LLAMA3", tmp_path / "out2"
    ).load_checkpoint()["model"]
    torch.testing.assert_close(_logits(again), expected, rtol=0, atol=0)


def test_meta_checkpointer_reads_one_file_only(tmp_path):
    with pytest.raises(ValueError, match="one file"):
        FullModelMetaCheckpointer(tmp_path, ["a.pth", "b.pth"], "LLAMA3", tmp_path / "out")


def test_torchtune_round_trip(tmp_path):
    sd, expected = _reference()
    ckpt_dir = tmp_path / "tt"
    ckpt_dir.mkdir()
    keys = sorted(sd)
    torch.save({k: sd[k] for k in keys[:7]}, ckpt_dir / "part1.pt")
    torch.save({k: sd[k] for k in keys[7:]}, ckpt_dir / "part2.pt")
    ckpt = FullModelTorchTuneCheckpointer(
        ckpt_dir, ["part1.pt", "part2.pt"], "LLAMA3", tmp_path / "o"
    )
    loaded = ckpt.load_checkpoint()["model"]
    torch.testing.assert_close(_logits(loaded), expected, rtol=0, atol=0)
    ckpt.save_checkpoint({"model": loaded}, epoch=2)
    out = tmp_path / "o/epoch_2/model/model-00001-of-00001.bin"
    again = torch.load(out, weights_only=True)
    assert set(again) == set(sd)
    torch.testing.assert_close(_logits(again), expected, rtol=0, atol=0)


def _write_hf(sd, ckpt_dir, suffix: str) -> list[str]:
    ckpt_dir.mkdir()
    hf = convert_weights.tune_to_hf(sd, num_heads=4, num_kv_heads=2, dim=32)
    keys = sorted(hf)
    names = [f"model-0000{i}-of-00002{suffix}" for i in (1, 2)]
    for name, part in zip(names, (keys[:10], keys[10:]), strict=True):
        shard = {k: hf[k].contiguous() for k in part}
        if suffix == ".safetensors":
            safetensors.torch.save_file(shard, ckpt_dir / name, metadata={"format": "pt"})
        else:
            torch.save(shard, ckpt_dir / name)
    (ckpt_dir / "config.json").write_text(json.dumps(HF_CONFIG))
    (ckpt_dir / "tokenizer_config.json").write_text("{}")
    return names


@pytest.mark.parametrize("suffix", [".safetensors", ".bin"])
def test_hf_round_trip_keeps_shard_layout(tmp_path, suffix):
    sd, expected = _reference()
    names = _write_hf(sd, tmp_path / "hf", suffix)
    ckpt = FullModelHFCheckpointer(
        tmp_path / "hf",
        {"filename_format": "model-{}-of-{}" + suffix, "max_filename": "00002"},
        "LLAMA3",
        tmp_path / "out",
    )
    loaded = ckpt.load_checkpoint()["model"]
    assert set(loaded) == set(sd)
    # q/k rows were permuted on the way in, so they differ from the HF file...
    assert not torch.equal(
        loaded["layers.0.attn.q_proj.weight"],
        _read(tmp_path / "hf", names)["model.layers.0.self_attn.q_proj.weight"],
    )
    # ...and equal the original torchtune tensors.
    torch.testing.assert_close(_logits(loaded), expected, rtol=0, atol=0)

    ckpt.save_checkpoint({"model": loaded}, epoch=1)
    epoch_dir = tmp_path / "out/epoch_1/model"
    for name in names:
        assert set(_read(epoch_dir, [name])) == set(_read(tmp_path / "hf", [name]))
    index_name = (
        "model.safetensors.index.json"
        if suffix == ".safetensors"
        else ("pytorch_model.bin.index.json")
    )
    index = json.loads((epoch_dir / index_name).read_text())
    assert index["weight_map"]["lm_head.weight"] in names
    assert (epoch_dir / "config.json").exists() and (epoch_dir / "tokenizer_config.json").exists()
    again = FullModelHFCheckpointer(epoch_dir, names, "LLAMA3", tmp_path / "out2").load_checkpoint()
    torch.testing.assert_close(_logits(again["model"]), expected, rtol=0, atol=0)


def _read(directory, names):
    out = {}
    for name in names:
        path = directory / name
        if path.suffix == ".safetensors":
            out.update(safetensors.torch.load_file(path))
        else:
            out.update(torch.load(path, weights_only=True))
    return out


def test_adapter_files_and_resume_left_to_ray_train(tmp_path):
    sd, _ = _reference()
    _write_hf(sd, tmp_path / "hf", ".safetensors")
    names = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    torch.manual_seed(0)
    lora = lora_llama3(
        lora_attn_modules=["q_proj", "k_proj", "v_proj", "output_proj"],
        apply_lora_to_mlp=True,
        lora_rank=2,
        lora_alpha=4.0,
        intermediate_dim=48,
        **SHAPE,
    )
    adapter = get_adapter_state_dict(lora.state_dict())
    ckpt = FullModelHFCheckpointer(tmp_path / "hf", names, "LLAMA3", tmp_path / "out")
    state = {
        "adapter": adapter,
        "adapter_config": {
            "r": 2,
            "lora_alpha": 4.0,
            "target_modules": ["q_proj", "k_proj", "v_proj", "output_proj", "w1", "w2", "w3"],
            "peft_type": "LORA",
        },
    }
    ckpt.save_checkpoint(state, epoch=0, adapter_only=True)
    epoch_dir = tmp_path / "out/epoch_0"
    assert not (epoch_dir / "model").exists()
    config = json.loads((epoch_dir / "adapter_config.json").read_text())
    assert config["target_modules"] == [
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "down_proj",
        "up_proj",
    ]
    assert (config["r"], config["lora_alpha"], config["peft_type"]) == (2, 4.0, "LORA")
    peft_sd = safetensors.torch.load_file(epoch_dir / "adapter_model.safetensors")
    assert len(peft_sd) == len(adapter) == 2 * 7 * 2
    assert "base_model.model.model.layers.1.mlp.down_proj.lora_B.weight" in peft_sd
    assert "adapter" in state and "model" not in state  # the caller's dict is untouched

    saved = torch.load(epoch_dir / "adapter_model.pt", weights_only=True)
    assert set(saved) == set(get_adapter_params(lora))
    for key, value in adapter.items():
        assert torch.equal(saved[key], value)

    # One resume system: Ray Train's. torchtune's checkpointer keys load as null, no more.
    again = FullModelHFCheckpointer(
        tmp_path / "hf", names, "LLAMA3", tmp_path / "out2", recipe_checkpoint=None
    )
    assert set(again.load_checkpoint()) == {"model"}
    with pytest.raises(ValueError, match="ray.name and ray.storage_path"):
        FullModelHFCheckpointer(
            tmp_path / "hf", names, "LLAMA3", tmp_path / "out3", adapter_checkpoint="x.pt"
        )


def test_adapter_only_without_adapter_is_an_error(tmp_path):
    sd, _ = _reference()
    (tmp_path / "tt").mkdir()
    torch.save(sd, tmp_path / "tt/model.pt")
    ckpt = FullModelTorchTuneCheckpointer(tmp_path / "tt", ["model.pt"], "LLAMA3", tmp_path / "o")
    with pytest.raises(ValueError, match="adapter_only"):
        ckpt.save_checkpoint({"model": sd}, epoch=0, adapter_only=True)


def test_output_dir_inside_checkpoint_dir_is_rejected(tmp_path):
    (tmp_path / "model.pt").write_bytes(b"")
    with pytest.raises(ValueError, match="must not be inside"):
        FullModelTorchTuneCheckpointer(tmp_path, ["model.pt"], "LLAMA3", tmp_path / "out")


def test_missing_checkpoint_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        FullModelTorchTuneCheckpointer(tmp_path, ["nope.pt"], "LLAMA3", tmp_path.parent / "o")


def test_safetensors_reader_and_writer_agree_with_the_library(tmp_path):
    tensors = {
        "bf16": torch.randn(3, 5).bfloat16(),
        "f32": torch.randn(7),
        "i64": torch.arange(4),
        "empty": torch.zeros(0, 3),
        "flag": torch.tensor([True, False]),
        "view": torch.randn(4, 6)[:, 1:3],  # non-contiguous input
    }
    write_safetensors(tensors, tmp_path / "ours.safetensors")
    theirs = safetensors.torch.load_file(tmp_path / "ours.safetensors")
    safetensors.torch.save_file(
        {k: v.contiguous() for k, v in tensors.items()}, tmp_path / "lib.safetensors"
    )
    ours = read_safetensors(tmp_path / "lib.safetensors")
    for name, tensor in tensors.items():
        for loaded in (theirs[name], ours[name]):
            assert loaded.dtype == tensor.dtype and torch.equal(loaded, tensor)


def test_unknown_key_is_named():
    with pytest.raises(KeyError, match="model.layers.0.self_attn.q_norm.weight"):
        convert_weights.hf_to_tune(
            {"model.layers.0.self_attn.q_norm.weight": torch.ones(2)},
            num_heads=1,
            num_kv_heads=1,
            dim=2,
        )


def _adapter_state():
    torch.manual_seed(0)
    lora = lora_llama3(
        lora_attn_modules=["q_proj", "v_proj"],
        lora_rank=2,
        lora_alpha=4.0,
        intermediate_dim=48,
        **SHAPE,
    )
    with torch.no_grad():
        for p in get_adapter_params(lora).values():
            p.normal_()
    config = {"r": 2, "lora_alpha": 4.0, "target_modules": ["q_proj", "v_proj"]}
    return {"adapter": get_adapter_state_dict(lora.state_dict()), "adapter_config": config}


def test_peft_adapter_needs_head_counts(tmp_path):
    sd, _ = _reference()
    (tmp_path / "tt").mkdir()
    torch.save(sd, tmp_path / "tt/model.pt")
    ckpt = FullModelTorchTuneCheckpointer(tmp_path / "tt", ["model.pt"], "LLAMA3", tmp_path / "o")
    ckpt.save_checkpoint(_adapter_state(), epoch=0, adapter_only=True)
    # no config.json / params.json: only the torchtune-named adapter, no half PEFT folder
    assert sorted(p.name for p in (tmp_path / "o/epoch_0").iterdir()) == ["adapter_model.pt"]

    (tmp_path / "tt/params.json").write_text(json.dumps(META_PARAMS))
    ckpt.save_checkpoint(_adapter_state(), epoch=1, adapter_only=True)
    assert sorted(p.name for p in (tmp_path / "o/epoch_1").iterdir()) == [
        "adapter_config.json",
        "adapter_model.pt",
        "adapter_model.safetensors",
    ]


def test_meta_peft_adapter_matches_hf_layout(tmp_path):
    sd, _ = _reference()
    (tmp_path / "meta").mkdir()
    torch.save(convert_weights.tune_to_meta(sd), tmp_path / "meta/consolidated.00.pth")
    (tmp_path / "meta/params.json").write_text(json.dumps(META_PARAMS))
    ckpt = FullModelMetaCheckpointer(
        tmp_path / "meta", ["consolidated.00.pth"], "LLAMA3", tmp_path / "out"
    )
    state = _adapter_state()
    ckpt.save_checkpoint(state, epoch=0, adapter_only=True)
    peft_sd = safetensors.torch.load_file(tmp_path / "out/epoch_0/adapter_model.safetensors")
    key = "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"
    tune_b = state["adapter"]["layers.0.attn.q_proj.lora_b.weight"]  # (heads*head_dim, rank)
    # HF row (head, half, j) comes from torchtune row (head, 2j + half)
    expected = tune_b.view(4, 4, 2, 2).transpose(1, 2).reshape(32, 2)
    assert torch.equal(peft_sd[key], expected)
    assert not torch.equal(peft_sd[key], tune_b)
    v_key = "base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight"
    assert torch.equal(peft_sd[v_key], state["adapter"]["layers.1.attn.v_proj.lora_b.weight"])

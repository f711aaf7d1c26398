"""Config loading, overrides, interpolation, validation and torchtune aliases."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from raytune_chat.config import (
    ConfigError,
    apply_overrides,
    check_section,
    component_names,
    copy_builtin_config,
    find_config,
    instantiate,
    list_builtin_configs,
    load_config,
    load_yaml,
    resolve_component,
    resolve_interpolations,
)
from raytune_chat.recipes import validate_config

BUILTINS = [
    "llama2/7B_lora_single_device",
    "llama3/8B_lora",
    "llama3/8B_lora_single_device",
    "llama3/8B_qlora_single_device",
    "llama3/8B_dora_single_device",
    "llama3_1/8B_lora_single_device",
    "tiny/llama3_lora_cpu",
]


def test_builtin_configs_are_listed_and_open_with_their_command():
    assert set(BUILTINS) <= set(list_builtin_configs())
    for name in BUILTINS:
        first_lines = find_config(name).read_text().splitlines()[:12]
        assert any("raytune-chat run lora_finetune_" in line for line in first_lines), name


@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_configs_validate(name):
    settings = validate_config(load_config(name))
    assert settings.output_dir


def test_yaml_reads_exponent_floats_like_torchtune(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("lr: 3e-4\nn: 1_000\nname: 1e\nflag: True\n")
    assert load_yaml(path) == {"lr": 0.0003, "n": 1000, "name": "1e", "flag": True}


def test_overrides_set_remove_and_swap_component():
    cfg = {
        "epochs": 1,
        "model": {"_component_": "torchtune.models.llama3.lora_llama3_8b", "lora_rank": 8},
        "profiler": {"_component_": "torchtune.training.setup_torch_profiler"},
        "optimizer": {"lr": 1.0},
    }
    out = apply_overrides(
        cfg,
        [
            "epochs=15",
            "model=raytune_chat.models.llama3.lora_llama3",
            "~profiler",
            "optimizer.lr=2e-5",
            "model.lora_attn_modules=[q_proj,v_proj]",
            "ray.num_workers=2",
        ],
    )
    assert out == {
        "epochs": 15,
        "model": {
            "_component_": "raytune_chat.models.llama3.lora_llama3",
            "lora_rank": 8,
            "lora_attn_modules": ["q_proj", "v_proj"],
        },
        "optimizer": {"lr": 2e-5},
        "ray": {"num_workers": 2},
    }
    assert cfg["epochs"] == 1  # the input is not modified


def test_override_errors_name_the_key():
    with pytest.raises(ConfigError) as err:
        apply_overrides({"a": 1}, ["~b.c"])
    assert err.value.key == "b.c"
    with pytest.raises(ConfigError) as err:
        apply_overrides({"a": 1}, ["a.b=2"])
    assert err.value.key == "a"
    with pytest.raises(ConfigError) as err:
        apply_overrides({"a": 1}, ["epochs"])
    assert err.value.key == "epochs"
    assert "key=value" in str(err.value)
    with pytest.raises(ConfigError) as err:
        apply_overrides({"a": 1}, ["a=[1,2"])
    assert err.value.key == "a"
    with pytest.raises(ConfigError) as err:  # torchtune refuses it too
        apply_overrides({"m": {"_component_": "x.y"}}, ["~m._component_"])
    assert err.value.key == "m._component_"


def test_override_values_are_typed_like_torchtune():
    cfg = {"ray": {"resources_per_worker": {"CPU": 1, "GPU": 0}}, "checkpointer": {"k": 1}}
    out = apply_overrides(
        cfg,
        [
            "max_steps_per_epoch=None",
            "seed=null",
            "lr=3e-4",
            "layers=[1,2]",
            "dtype=bf16",
            "flag=True",
            "ray.resources_per_worker={CPU: 0.5}",
            "checkpointer.max_filename=00005",
            "note=a=b",
        ],
    )
    assert out == {
        "ray": {"resources_per_worker": {"CPU": 0.5, "GPU": 0}},  # merged into the section
        "checkpointer": {"k": 1, "max_filename": "00005"},
        "max_steps_per_epoch": None,
        "seed": None,
        "lr": 3e-4,
        "layers": [1, 2],
        "dtype": "bf16",
        "flag": True,
        "note": "a=b",
    }


def test_removal_drops_emptied_sections_and_comes_before_sets():
    cfg = {"a": {"b": {"c": 1}}, "d": {"e": 1, "f": 2}}
    assert apply_overrides(cfg, ["~a.b.c", "~d.e"]) == {"d": {"f": 2}}
    # as in torchtune, removals apply to the file's config, then every `key=value` merges over
    assert apply_overrides(cfg, ["d.e=5", "~d"]) == {"a": {"b": {"c": 1}}, "d": {"e": 5}}


def test_env_interpolation_with_and_without_default(monkeypatch):
    monkeypatch.setenv("RAYTUNE_CHAT_TEST_DIR", "/data/runs")
    monkeypatch.delenv("RAYTUNE_CHAT_UNSET", raising=False)
    cfg = resolve_interpolations(
        {
            "output_dir": "${oc.env:RAYTUNE_CHAT_TEST_DIR}/one",
            "logs": "${output_dir}/logs",
            "cache": "${oc.env:RAYTUNE_CHAT_UNSET,/tmp/cache}",
        }
    )
    assert cfg == {
        "output_dir": "/data/runs/one",
        "logs": "/data/runs/one/logs",
        "cache": "/tmp/cache",
    }
    with pytest.raises(ConfigError) as err:
        resolve_interpolations({"paths": {"home": "${oc.env:RAYTUNE_CHAT_UNSET}"}})
    assert err.value.key == "paths.home"
    assert "RAYTUNE_CHAT_UNSET" in str(err.value)


def test_an_override_may_use_interpolation(tmp_path):
    cfg = load_config(
        "tiny/llama3_lora_cpu",
        [f"output_dir={tmp_path}", "dataset.rejected_path=${output_dir}/bad"],
    )
    assert cfg["dataset"]["rejected_path"] == f"{tmp_path}/bad"


def test_unknown_asset_is_named_with_its_key():
    with pytest.raises(ConfigError) as err:
        resolve_interpolations({"tokenizer": {"path": "${asset:nope}"}})
    assert err.value.key == "tokenizer.path"
    assert "unknown asset 'nope'" in str(err.value)


def test_broken_yaml_names_the_file_and_line_in_one_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("epochs: 1\nmodel:\n  lora_rank: [8\nbatch_size: 2\n")
    with pytest.raises(ConfigError) as err:
        load_config(str(path))
    message = str(err.value)
    assert message.startswith(f"{path}, line ")
    assert "not valid YAML" in message
    assert "\n" not in message
    path.write_text("epochs: 1\nepochs: 2\n")
    with pytest.raises(ConfigError, match="line 2"):  # duplicate keys are refused, not merged
        load_yaml(path)
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must be a YAML mapping"):
        load_yaml(path)


def test_interpolation_follows_overrides_and_keeps_types():
    cfg = load_config("tiny/llama3_lora_cpu", ["output_dir=/tmp/elsewhere"])
    assert cfg["metric_logger"]["log_dir"] == "/tmp/elsewhere/logs"
    assert cfg["dataset"]["rejected_path"] == "/tmp/elsewhere/rejected"
    assert Path(cfg["tokenizer"]["path"]).name == "cl100k_base.tiktoken"
    assert Path(cfg["dataset"]["data_files"]).is_file()
    assert resolve_interpolations({"a": 3, "b": "${a}", "c": "x${a}"}) == {
        "a": 3,
        "b": 3,
        "c": "x3",
    }


def test_interpolation_errors_name_the_key():
    with pytest.raises(ConfigError) as err:
        resolve_interpolations({"logger": {"log_dir": "${nowhere}/logs"}})
    assert err.value.key == "logger.log_dir"
    with pytest.raises(ConfigError) as err:
        resolve_interpolations({"a": "${b}", "b": "${a}"})
    assert "cycle" in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_argument_is_named_with_the_accepted_ones():
    with pytest.raises(ConfigError) as err:
        check_section(
            {"_component_": "torchtune.models.llama3.lora_llama3_8b", "lora_rnak": 8},
            key="model",
        )
    assert err.value.key == "model.lora_rnak"
    assert "lora_rank" in str(err.value)


def test_missing_required_argument_and_bad_type_are_named():
    with pytest.raises(ConfigError) as err:
        check_section(
            {"_component_": "raytune_chat.models.llama3.llama3_tokenizer"}, key="tokenizer"
        )
    assert err.value.key == "tokenizer.path"
    with pytest.raises(ConfigError) as err:
        check_section(
            {
                "_component_": "torchtune.models.llama3.lora_llama3_8b",
                "lora_rank": "eight",
                "lora_attn_modules": ["q_proj"],
            },
            key="model",
        )
    assert err.value.key == "model.lora_rank"


def test_recipe_supplied_argument_may_not_be_set():
    with pytest.raises(ConfigError) as err:
        check_section(
            {"_component_": "torch.optim.AdamW", "params": []}, key="optimizer", provided=["params"]
        )
    assert err.value.key == "optimizer.params"


def test_unknown_component_is_an_error_naming_the_key():
    with pytest.raises(ConfigError) as err:
        resolve_component("torchtune.models.gemma.gemma_2b", key="model._component_")
    assert err.value.key == "model._component_"
    with pytest.raises(ConfigError) as err:
        check_section({"_component_": "os.system", "command": "true"}, key="loss")
    assert err.value.key == "loss._component_"


def test_forwarded_kwargs_of_a_class_are_checked_against_its_base():
    section = {
        "_component_": "torchtune.training.FullModelMetaCheckpointer",
        "checkpoint_dir": "/x",
        "checkpoint_files": ["consolidated.00.pth"],
        "model_typ": "LLAMA3",
        "output_dir": "/y",
    }
    with pytest.raises(ConfigError) as err:
        check_section(section, key="checkpointer")
    assert err.value.key == "checkpointer.model_typ"


TORCHTUNE_COMPONENTS = [
    # every component path of torchtune's Llama2/Llama3 LoRA configs (the 33 LoRA, QLoRA and
    # DoRA configs are checked whole in test_torchtune_configs.py)
    "torchtune.models.llama3.lora_llama3_8b",
    "torchtune.models.llama3.qlora_llama3_8b",
    "torchtune.models.llama2.lora_llama2_7b",
    "torchtune.models.mistral.lora_mistral_7b",
    "torchtune.training.metric_logging.WandBLogger",
    "torchtune.training.metric_logging.TensorBoardLogger",
    "torchtune.training.metric_logging.MLFlowLogger",
    "torchtune.training.metric_logging.CometLogger",
    "torchtune.models.llama3.llama3_tokenizer",
    "torchtune.models.llama3_1.lora_llama3_1_8b",
    "torchtune.models.llama3_2.lora_llama3_2_1b",
    "torchtune.models.llama2.llama2_tokenizer",
    "torchtune.training.FullModelMetaCheckpointer",
    "torchtune.training.FullModelHFCheckpointer",
    "torchtune.training.FullModelTorchTuneCheckpointer",
    "torchtune.datasets.chat_dataset",
    "torchtune.modules.get_cosine_schedule_with_warmup",
    "torchtune.training.lr_schedulers.get_cosine_schedule_with_warmup",
    "torchtune.modules.loss.CEWithChunkedOutputLoss",
    "torchtune.training.metric_logging.DiskLogger",
    "torchtune.training.setup_torch_profiler",
    "torch.optim.AdamW",
]


@pytest.mark.parametrize("name", TORCHTUNE_COMPONENTS)
def test_torchtune_component_paths_resolve_to_ours(name):
    assert name in component_names()
    fn = resolve_component(name, key="x")
    assert fn.__module__.startswith(("raytune_chat.", "torch.optim"))


def test_torchtune_yaml_validates_unchanged(tmp_path):
    """torchtune 0.6.1's llama3/8B_lora_single_device.yaml with the tutorial's dataset."""
    torchtune_yaml = """
output_dir: /tmp/torchtune/llama3_8B/lora_single_device
model:
  _component_: torchtune.models.llama3.lora_llama3_8b
  lora_attn_modules: ['q_proj', 'v_proj', 'output_proj']
  apply_lora_to_mlp: True
  apply_lora_to_output: False
  lora_rank: 8
  lora_alpha: 16
  lora_dropout: 0.0
tokenizer:
  _component_: torchtune.models.llama3.llama3_tokenizer
  path: /tmp/Meta-Llama-3-8B-Instruct/original/tokenizer.model
  max_seq_len: null
checkpointer:
  _component_: torchtune.training.FullModelMetaCheckpointer
  checkpoint_dir: /tmp/Meta-Llama-3-8B-Instruct/original/
  checkpoint_files: [
    consolidated.00.pth
  ]
  recipe_checkpoint: null
  output_dir: ${output_dir}
  model_type: LLAMA3
resume_from_checkpoint: False
save_adapter_weights_only: False
dataset:
  _component_: torchtune.datasets.chat_dataset
  source: json
  data_files: data/my_data.json
  split: train
  conversation_column: dialogue
  conversation_style: sharegpt
  packed: False
seed: null
shuffle: True
batch_size: 2
optimizer:
  _component_: torch.optim.AdamW
  fused: True
  weight_decay: 0.01
  lr: 3e-4
lr_scheduler:
  _component_: torchtune.training.lr_schedulers.get_cosine_schedule_with_warmup
  num_warmup_steps: 100
loss:
  _component_: torchtune.modules.loss.CEWithChunkedOutputLoss
epochs: 1
max_steps_per_epoch: null
gradient_accumulation_steps: 8
clip_grad_norm: null
compile: False
metric_logger:
  _component_: torchtune.training.metric_logging.DiskLogger
  log_dir: ${output_dir}/logs
log_every_n_steps: 1
log_peak_memory_stats: True
device: cuda
dtype: bf16
enable_activation_checkpointing: True
enable_activation_offloading: False
profiler:
  _component_: torchtune.training.setup_torch_profiler
  enabled: False
  output_dir: ${output_dir}/profiling_outputs
  cpu: True
  cuda: True
  profile_memory: False
  with_stack: False
  record_shapes: True
  with_flops: False
  wait_steps: 5
  warmup_steps: 3
  active_steps: 2
  num_cycles: 1
"""
    path = tmp_path / "torchtune.yaml"
    path.write_text(torchtune_yaml)
    cfg = load_config(str(path))
    settings = validate_config(cfg)
    assert (settings.gradient_accumulation_steps, settings.dtype, settings.batch_size) == (
        8,
        "bf16",
        2,
    )
    assert cfg["checkpointer"]["output_dir"] == "/tmp/torchtune/llama3_8B/lora_single_device"


def test_top_level_typos_and_bad_values_are_named():
    cfg = load_config("tiny/llama3_lora_cpu")
    for override, key in [
        ("epoch=3", "epoch"),
        ("dtype=fp8", "dtype"),
        ("batch_size=two", "batch_size"),
        ("ray.num_wokers=2", "ray.num_wokers"),
        ("~loss", "loss"),
        ("dataset.conversation_colum=x", "dataset.conversation_colum"),
    ]:
        with pytest.raises(ConfigError) as err:
            validate_config(apply_overrides(cfg, [override]))
        assert err.value.key == key, override


def test_single_device_recipe_rejects_more_workers():
    cfg = load_config("tiny/llama3_lora_cpu", ["ray.num_workers=2"])
    with pytest.raises(ConfigError) as err:
        validate_config(cfg, max_workers=1)
    assert err.value.key == "ray.num_workers"


def test_instantiate_builds_nested_and_translates_aliases():
    opt = instantiate(
        {"_component_": "torch.optim.SGD", "lr": 0.5},
        params=[torch.nn.Parameter(torch.zeros(2))],
        key="optimizer",
    )
    assert opt.param_groups[0]["lr"] == 0.5
    sched = instantiate(
        {"_component_": "torchtune.modules.get_cosine_schedule_with_warmup", "num_warmup_steps": 2},
        optimizer=opt,
        num_training_steps=10,
        key="lr_scheduler",
    )
    assert sched.get_last_lr() == [0.0]


def test_copy_builtin_config_never_overwrites(tmp_path):
    dest = copy_builtin_config("llama3/8B_lora_single_device", tmp_path / "custom.yaml")
    assert dest.read_text() == find_config("llama3/8B_lora_single_device").read_text()
    with pytest.raises(ConfigError):
        copy_builtin_config("llama3/8B_lora_single_device", dest)
    with pytest.raises(ConfigError):
        copy_builtin_config("llama3/nope", tmp_path / "x.yaml")


def test_an_empty_config_folder_is_an_error_not_an_empty_list(tmp_path):
    with pytest.raises(ConfigError, match="no built-in config found"):
        list_builtin_configs(tmp_path)


def test_every_registry_entry_imports():
    """No entry may point at a builder that does not exist (aliases included)."""
    names = component_names()
    assert len(names) > 150
    for name in names:
        fn = resolve_component(name, key="x")
        assert callable(fn), name
        if name.startswith("torchtune."):  # an alias resolves to the very object of our name
            ours = "raytune_chat." + name[len("torchtune.") :]
            assert resolve_component(ours, key="x") is fn, name

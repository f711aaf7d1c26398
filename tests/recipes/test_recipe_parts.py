"""Recipe pieces that need no cluster: settings, step plan, resume skipping, saved state."""

from __future__ import annotations

import math

import pytest
import torch

from raytune_chat.config import ConfigError
from raytune_chat.training import (
    DiskLogger,
    RaySettings,
    RecipeSettings,
    TrainPosition,
    get_cosine_schedule_with_warmup,
    load_train_state,
    optimizer_steps,
    parse_settings,
    save_train_state,
)
from raytune_chat.training.lr_schedulers import set_num_training_steps
from raytune_chat.training.metric_logging import read_metrics
from raytune_chat.training.step_plan import StepPlan, plan_from_epoch, plan_from_rows, with_budgets

SECTIONS = {k: {} for k in ("model", "tokenizer", "dataset", "optimizer", "loss")}


def test_plan_counts_full_batches_per_worker_and_caps_steps():
    s = RecipeSettings(
        output_dir="o",
        batch_size=2,
        gradient_accumulation_steps=3,
        epochs=2,
        ray=RaySettings(num_workers=2),
    )
    # 25 rows per worker -> 12 batches -> 4 steps
    assert plan_from_rows(50, s, exact=True, basis="counted") == StepPlan(4, 8, True, "counted")
    capped = RecipeSettings(output_dir="o", max_steps_per_epoch=3, epochs=2)
    assert plan_from_rows(1000, capped, exact=False, basis="sample") == StepPlan(
        3, 6, False, "sample"
    )
    with pytest.raises(ValueError, match="no full optimizer step"):
        plan_from_rows(3, s, exact=True, basis="counted")
    # an estimate that small still plans a step: the run learns the truth as it streams
    assert plan_from_rows(3, s, exact=False, basis="sample").total_steps == 2


def test_step_and_token_budgets_shorten_the_plan():
    s = RecipeSettings(output_dir="o", epochs=3, max_steps=50)
    assert plan_from_epoch(40, s) == StepPlan(40, 50, True, "epoch")  # 120 planned, cut at 50
    budget = RecipeSettings(output_dir="o", epochs=3, max_trained_tokens=3000)
    plan = plan_from_epoch(40, budget)
    # 10 steps took 500 trained tokens: 50 per step, 2,500 left -> 50 more steps
    assert with_budgets(plan, budget, steps_done=10, trained_tokens_done=500) == StepPlan(
        40, 60, False, "token budget"
    )
    assert with_budgets(plan, budget, steps_done=0, trained_tokens_done=0) == plan


def test_cosine_schedule_follows_a_new_length_and_checkpoints_it():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = get_cosine_schedule_with_warmup(opt, 0, 10)
    for _ in range(5):
        opt.step()
        sched.step()
    assert sched.get_last_lr()[0] == pytest.approx(0.5)  # half way through 10 steps
    assert set_num_training_steps(sched, 20)
    opt.step()
    sched.step()
    assert sched.get_last_lr()[0] == pytest.approx(0.5 * (1 + math.cos(math.pi * 6 / 20)))
    fresh_opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    fresh = get_cosine_schedule_with_warmup(fresh_opt, 0, 10)
    fresh.load_state_dict(sched.state_dict())
    assert fresh.lr_lambdas[0].num_training_steps == 20  # the length is in the checkpoint
    for _ in range(30):  # past the planned end the rate stays at 0, it does not rise again
        opt.step()
        sched.step()
    assert sched.get_last_lr()[0] == 0.0


def test_resume_skips_consumed_steps_and_drops_a_partial_tail():
    groups = [g for g, _ in optimizer_steps(iter(range(11)), 2, skip=3)]
    assert groups == [[6, 7], [8, 9]]


def test_settings_reject_unknown_and_bad_keys():
    assert parse_settings({"output_dir": "o", **SECTIONS}).ray.num_workers == 1
    with pytest.raises(ConfigError) as err:
        parse_settings({"output_dir": "o", "ray": {"num_workers": 0}, **SECTIONS})
    assert err.value.key == "ray.num_workers"
    with pytest.raises(ConfigError) as err:
        parse_settings({"output_dir": "o", "ray": {"strategy": "zero3"}, **SECTIONS})
    assert err.value.key == "ray.strategy"
    with pytest.raises(ConfigError) as err:
        parse_settings({"output_dir": "o", "clip_grad_norm": "big", **SECTIONS})
    assert err.value.key == "clip_grad_norm"
    with pytest.raises(ConfigError) as err:
        parse_settings({**SECTIONS})
    assert err.value.key == "output_dir"


def test_train_state_round_trip_restores_adapter_optimizer_schedule(tmp_path):
    def parts():
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(4, 4))
        model[0].weight.requires_grad_(False)
        opt = torch.optim.AdamW([model[0].bias], lr=0.1)
        return model, opt, get_cosine_schedule_with_warmup(opt, 2, 10)

    model, opt, sched = parts()
    for _ in range(3):
        model(torch.ones(1, 4)).sum().backward()
        opt.step()
        sched.step()
        opt.zero_grad()
    position = TrainPosition(
        epoch=1, step_in_epoch=2, global_step=3, num_tokens=7, seed=1234, dataset="cached"
    )
    save_train_state(tmp_path, model, opt, sched, position)
    fresh, fresh_opt, fresh_sched = parts()
    assert load_train_state(tmp_path, fresh, fresh_opt, fresh_sched) == position
    assert torch.equal(fresh[0].bias, model[0].bias)
    assert fresh_sched.get_last_lr() == sched.get_last_lr()
    assert fresh_opt.state_dict()["state"][0]["step"] == 3
    with pytest.raises(RuntimeError, match="adapter keys"):
        load_train_state(tmp_path, torch.nn.Sequential(torch.nn.Linear(4, 2)), fresh_opt, sched)


def test_metrics_log_drops_steps_a_resumed_run_repeats(tmp_path):
    logger = DiskLogger(log_dir=str(tmp_path), filename="metrics.jsonl")
    for step in range(1, 6):
        logger.log_dict({"loss": float(step)}, step=step)
    logger.truncate_after(3)
    logger.log_dict({"loss": 4.5}, step=4)
    logger.close()
    assert [(r["step"], r["loss"]) for r in read_metrics(logger.path)] == [
        (1, 1.0),
        (2, 2.0),
        (3, 3.0),
        (4, 4.5),
    ]


def test_resume_from_checkpoint_warns_once_and_checkpointer_resume_keys_are_refused(capsys):
    from raytune_chat.config import load_config
    from raytune_chat.training import validate_config
    from raytune_chat.training.recipe_config import RESUME_WARNING

    validate_config(load_config("tiny/llama3_lora_cpu", ["resume_from_checkpoint=False"]))
    assert "resume_from_checkpoint" not in capsys.readouterr().err
    validate_config(load_config("tiny/llama3_lora_cpu", ["resume_from_checkpoint=True"]))
    assert capsys.readouterr().err.splitlines() == [RESUME_WARNING]
    cfg = load_config("tiny/llama3_lora_cpu")
    cfg["checkpointer"] = {
        "_component_": "raytune_chat.training.FullModelHFCheckpointer",
        "checkpoint_dir": "/nowhere",
        "checkpoint_files": ["model.safetensors"],
        "model_type": "LLAMA3",
        "output_dir": "/tmp/out",
        "recipe_checkpoint": "recipe_state/recipe_state.pt",
    }
    with pytest.raises(ConfigError, match="ray.name and ray.storage_path") as err:
        validate_config(cfg)
    assert err.value.key == "checkpointer.recipe_checkpoint"

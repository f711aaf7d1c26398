"""Recipe pieces that need no cluster: settings, step plan, resume skipping, saved state."""

from __future__ import annotations

import pytest
import torch

from raytune_chat.config import ConfigError
from raytune_chat.recipes._driver import plan_steps
from raytune_chat.recipes._loop import optimizer_steps
from raytune_chat.recipes._settings import RaySettings, RecipeSettings, parse_settings
from raytune_chat.training import (
    DiskLogger,
    TrainPosition,
    get_cosine_schedule_with_warmup,
    load_train_state,
    save_train_state,
)
from raytune_chat.training.metric_logging import read_metrics

SECTIONS = {k: {} for k in ("model", "tokenizer", "dataset", "optimizer", "loss")}


def test_plan_counts_full_batches_per_worker_and_caps_steps():
    s = RecipeSettings(
        output_dir="o",
        batch_size=2,
        gradient_accumulation_steps=3,
        epochs=2,
        ray=RaySettings(num_workers=2),
    )
    assert plan_steps(50, s) == {"steps_per_epoch": 4, "total_steps": 8}  # 25 rows -> 12 -> 4
    capped = RecipeSettings(output_dir="o", max_steps_per_epoch=3, epochs=2)
    assert plan_steps(1000, capped) == {"steps_per_epoch": 3, "total_steps": 6}
    with pytest.raises(ValueError, match="no full optimizer step"):
        plan_steps(3, s)


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
    position = TrainPosition(epoch=1, step_in_epoch=2, global_step=3, num_tokens=7)
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

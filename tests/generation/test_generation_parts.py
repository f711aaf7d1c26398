"""The plain-torch parts of generation: sampling, the loop's stop rules, prompts, the stop
share, the settings, and the `generate` recipe's --chat on the tiny CPU config."""

from __future__ import annotations

import io

import pytest
import torch

from raytune_chat._cli import main
from raytune_chat.config import ConfigError, asset_path, load_config
from raytune_chat.data import Message
from raytune_chat.generation import (
    chat_prompt,
    first_user_turn_prompt,
    generate,
    parse_generate_settings,
    prompt_before_first_answer,
    sample_next_token,
    stop_token_share,
)
from raytune_chat.models.llama3 import llama3, llama3_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return llama3_tokenizer(str(asset_path("cl100k_base")))


@pytest.fixture
def model():
    torch.manual_seed(0)
    return llama3(
        vocab_size=40, num_layers=1, num_heads=2, num_kv_heads=1, embed_dim=16, max_seq_len=20
    ).eval()


def test_greedy_is_the_argmax_at_top_k_1_or_temperature_0():
    torch.manual_seed(0)
    logits = torch.randn(4, 50)
    best = logits.argmax(-1)
    assert torch.equal(sample_next_token(logits, temperature=0.0, top_k=300), best)
    assert torch.equal(sample_next_token(logits, temperature=5.0, top_k=1), best)
    g = torch.Generator().manual_seed(0)
    draws = torch.stack(
        [sample_next_token(logits, temperature=1.0, generator=g) for _ in range(50)]
    )
    assert (draws != best).any()  # a real sample otherwise


def test_top_k_draws_only_among_the_k_largest():
    logits = torch.tensor([[5.0, 4.0, 3.0, -1.0, 2.5]])
    g = torch.Generator().manual_seed(0)
    draws = {
        int(sample_next_token(logits, temperature=10.0, top_k=3, generator=g)) for _ in range(200)
    }
    assert draws == {0, 1, 2}


def test_generation_stops_at_a_stop_token_at_max_new_tokens_or_when_the_context_is_full(model):
    free = generate(model, [1, 2, 3], max_new_tokens=5, stop_tokens=[])
    assert free.stop_reason == "max_new_tokens" and len(free.tokens) == 5
    stop = free.tokens[2]
    stopped = generate(model, [1, 2, 3], max_new_tokens=5, stop_tokens=[stop])
    assert stopped.tokens == free.tokens[: free.tokens.index(stop) + 1]
    assert stopped.stop_reason == "stop_token"
    full = generate(model, list(range(18)), max_new_tokens=10, stop_tokens=[])
    assert full.stop_reason == "max_seq_len" and len(full.tokens) == 20 - 18 + 1


def test_stop_token_share_counts_the_prompts_that_stopped_and_restores_the_model(model):
    prompts = [[1, 2], [3, 4, 5], [6], [7, 8]]
    answers = [generate(model, p, max_new_tokens=3, stop_tokens=[]).tokens for p in prompts]
    stop = answers[0][0]
    expected = sum(stop in a for a in answers)
    model.train()
    share, n = stop_token_share(model, prompts, stop_tokens=[stop], max_new_tokens=3)
    assert (share, n) == (expected / 4, 4) and 0 < share <= 1
    assert model.training and not model.caches_are_enabled()
    assert stop_token_share(model, [], stop_tokens=[stop], max_new_tokens=3) == (0.0, 0)


@pytest.mark.parametrize("train_on_input", [False, True])
def test_a_validation_row_gives_its_first_user_turn_prompt(tokenizer, train_on_input):
    talk = [
        Message("system", "Be brief."),
        Message("user", "Hi", masked=not train_on_input),
        Message("assistant", "Hello"),
        Message("user", "Bye", masked=not train_on_input),
        Message("assistant", "Ciao"),
    ]
    tokens, mask = tokenizer.tokenize_messages(talk)
    expected = first_user_turn_prompt(tokenizer, talk)
    assert expected == chat_prompt(tokenizer, talk[:2])
    assert tokenizer.decode(expected, skip_special_tokens=False).endswith(
        "Hi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    # From the tokens alone: the mask, which train_on_input changes, is not needed.
    assert prompt_before_first_answer(tokenizer, tokens) == expected
    assert prompt_before_first_answer(tokenizer, tokens[:5]) is None  # cut before any answer


def test_generation_settings_name_the_offending_key():
    cfg = load_config("tiny/llama3_generate_cpu")
    assert parse_generate_settings(cfg).temperature == 0
    for key, value, match in [
        ("top_k", 0, "top_k"),
        ("max_new_tokens", 0, "max_new_tokens"),
        ("quantizer", {"_component_": "x"}, "quantizer"),
        ("max_new_token", 3, "max_new_token"),
        ("temperature", "hot", "temperature"),
    ]:
        with pytest.raises(ConfigError) as err:
            parse_generate_settings({**cfg, key: value})
        assert err.value.key == match
    with pytest.raises(ConfigError) as err:
        parse_generate_settings({**cfg, "prompt": {"usr": "Hi"}})
    assert err.value.key == "prompt.usr"


def test_chat_answers_each_turn_with_the_conversation_so_far(monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("Hi there\nAnd then?\n\n"))
    argv = ["run", "generate", "--config", "tiny/llama3_generate_cpu", "--chat", "adapter=null"]
    assert main([*argv, "max_new_tokens=3", "model.num_layers=1"]) == 0
    out = capsys.readouterr().out
    assert out.count("assistant> ") == 2 and out.count("tokens/s; stopped by") == 2
    assert main(["run", "generate", "--config", "tiny/llama3_generate_cpu", "adapter=/nope"]) == 2
    assert "config error: adapter: /nope/adapter_model.safetensors not found" in (
        capsys.readouterr().err
    )


def test_tiny_generate_config_draws_the_base_weights_the_tiny_demo_trained_on():
    """tiny/llama3_generate_cpu applies the demo's adapter on random base weights: the same
    ones only because both configs build the same model from the same seed."""
    from raytune_chat.generation import ChatModel
    from raytune_chat.training import build_model, parse_settings

    train_cfg = load_config("tiny/llama3_lora_cpu")
    trained, _ = build_model(train_cfg, parse_settings(train_cfg), torch.device("cpu"))
    gen_cfg = load_config("tiny/llama3_generate_cpu", ["adapter=null"])
    chat = ChatModel(gen_cfg, parse_generate_settings(gen_cfg))
    ours = chat.model.state_dict()
    base = {k: v for k, v in trained.state_dict().items() if "lora_" not in k}
    assert base and all(torch.equal(v, ours[k]) for k, v in base.items())

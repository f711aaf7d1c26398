"""The model's KV cache: a prompt fed once and then one token at a time gives the logits of
feeding the whole sequence, and a model without caches is the training model unchanged."""

from __future__ import annotations

import pytest
import torch

from raytune_chat.models.llama3 import lora_llama3

SHAPE = dict(vocab_size=64, num_layers=2, num_heads=4, num_kv_heads=2, embed_dim=32, max_seq_len=24)


@pytest.fixture
def model():
    torch.manual_seed(0)
    model = lora_llama3(
        lora_attn_modules=["q_proj", "k_proj", "v_proj", "output_proj"],
        lora_rank=4,
        lora_alpha=8.0,
        **SHAPE,
    ).eval()
    with torch.no_grad():  # adapters that change the output, so LoRA layers are exercised
        for name, p in model.named_parameters():
            if "lora_b" in name:
                p.normal_(std=0.1)
    return model


@torch.no_grad()
def test_cached_steps_give_the_logits_of_the_whole_sequence(model):
    tokens = torch.randint(0, 64, (2, 12))
    full = model(tokens)
    model.setup_caches(batch_size=2, dtype=torch.float32)
    assert model.caches_are_enabled()
    steps = [
        model(tokens[:, :5]),
        model(tokens[:, 5:6]),
        model(tokens[:, 6:9]),
        model(tokens[:, 9:]),
    ]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=0, atol=1e-5)
    model.reset_caches()  # a new prompt starts at position 0 again
    torch.testing.assert_close(model(tokens[:, :7]), full[:, :7], rtol=0, atol=1e-5)


@torch.no_grad()
def test_caches_leave_the_state_dict_and_training_forward_alone(model):
    tokens = torch.randint(0, 64, (1, 10))
    before = model(tokens)
    keys = list(model.state_dict())
    model.setup_caches(batch_size=1, dtype=torch.float32)
    assert list(model.state_dict()) == keys  # the cache buffers are not persistent
    model(tokens)
    model.remove_caches()
    assert not model.caches_are_enabled()
    assert torch.equal(model(tokens), before)


@torch.no_grad()
def test_a_full_cache_is_an_error_naming_the_length(model):
    model.setup_caches(batch_size=1, dtype=torch.float32)
    model(torch.zeros(1, 20, dtype=torch.long))
    with pytest.raises(ValueError, match="sequence length 25 exceeds max_seq_len=24"):
        model(torch.zeros(1, 5, dtype=torch.long))

"""QLoRA, DoRA and QDoRA logits equal torchtune 0.6.1's for the same weights (golden values).

`fixtures/torchtune_0_6_1_peft_logits.json` holds the logits torchtune's own `lora_llama3`
gave, once, for the deterministic state dict built here; its `source` says how. The weights
are loaded as the recipe loads them: streamed into a meta-device model, NF4 on arrival.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from raytune_chat.models.llama3 import lora_llama3
from raytune_chat.modules.peft import get_adapter_state_dict
from raytune_chat.training import load_base_weights

pytest.importorskip("torchao")

GOLDEN = json.loads(
    (Path(__file__).parent / "fixtures" / "torchtune_0_6_1_peft_logits.json").read_text()
)["models"]
SHAPE = dict(
    vocab_size=64,
    num_layers=2,
    num_heads=4,
    num_kv_heads=2,
    embed_dim=256,
    max_seq_len=32,
    intermediate_dim=512,
)
LORA = dict(
    lora_attn_modules=["q_proj", "k_proj", "v_proj", "output_proj"],
    apply_lora_to_mlp=True,
    apply_lora_to_output=False,
    lora_rank=4,
    lora_alpha=8.0,
)
TOKENS = torch.tensor([[(7 * i + 3) % 64 for i in range(16)]])


def _state_dict(shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """Seeded weights in sorted-key order: norms near 1, positive magnitudes, small rest."""
    generator = torch.Generator().manual_seed(0)
    state = {}
    for key, shape in sorted(shapes.items()):
        x = torch.randn(shape, generator=generator)
        if key.endswith("scale"):
            x = 1 + 0.1 * x
        elif key.endswith("magnitude"):
            x = 0.5 + x.abs()
        elif not key.startswith("tok_embeddings"):
            x = 0.05 * x
        state[key] = x
    return state


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_logits_equal_torchtune_0_6_1(name):
    with torch.device("meta"):
        model = lora_llama3(**LORA, **SHAPE, **GOLDEN[name]["builder_args"])
    state = _state_dict({k: tuple(v.shape) for k, v in model.named_parameters()})
    adapter = get_adapter_state_dict(state)
    missing, unexpected = load_base_weights(
        model, [(k, v) for k, v in state.items() if k not in adapter]
    )
    assert sorted(missing) == sorted(adapter) and unexpected == []
    for key, value in adapter.items():
        module, _, attr = key.rpartition(".")
        setattr(model.get_submodule(module), attr, torch.nn.Parameter(value))
    with torch.no_grad():
        logits = model.eval()(TOKENS)[0]
    expected = torch.tensor(GOLDEN[name]["logits"])
    assert expected.shape == (16, 64)
    torch.testing.assert_close(logits, expected, rtol=0, atol=1e-4)

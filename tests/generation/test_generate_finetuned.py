"""Issue 16's acceptance on one tiny Llama that `transformers` created and our recipe fine-tuned.

One module fixture: a random `LlamaForCausalLM` saved by transformers, fine-tuned by
`lora_finetune_single_device` (HF checkpointer, merged weights and the PEFT adapter written).
Every test then generates greedily from it: on the merged weights ours equals transformers'
`generate` token for token; base + unmerged adapter (ours, or re-saved by `peft`) gives the
same; the KV-cache path equals the no-cache path; 50 prompts through `generate_batch` on the
local Ray cluster equal 50 single calls.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from raytune_chat.config import instantiate, load_config
from raytune_chat.data import Message
from raytune_chat.generation import ChatModel, parse_generate_settings
from raytune_chat.recipes import get_recipe
from tests.recipes._tiny import fast_overrides, sample_conversations, write_chat_file

transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.slow

MAX_NEW = 6
HF_CHECKPOINTER = "raytune_chat.training.FullModelHFCheckpointer"
# The model section of tests/recipes/_tiny.py (1 layer, width 32, LoRA everywhere).
LORA_MODEL = {
    "_component_": "raytune_chat.models.llama3.lora_llama3",
    "vocab_size": 128256,
    "num_layers": 1,
    "num_heads": 2,
    "num_kv_heads": 1,
    "embed_dim": 32,
    "intermediate_dim": 64,
    "max_seq_len": 128,
    "lora_attn_modules": ["q_proj", "v_proj", "output_proj"],
    "lora_rank": 4,
    "lora_alpha": 8,
    "apply_lora_to_mlp": True,
    "apply_lora_to_output": True,
}
BASE_MODEL = {
    k: v for k, v in LORA_MODEL.items() if not k.startswith(("lora_", "apply_lora", "_comp"))
} | {"_component_": "raytune_chat.models.llama3.llama3"}


def _hf_tiny_llama(folder: Path) -> Path:
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=128256,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=128,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        rope_parameters={"rope_type": "default", "rope_theta": 500_000.0},
        attn_implementation="eager",
    )
    model = transformers.LlamaForCausalLM(config)
    with torch.no_grad():  # random norms, so a norm mix-up would show
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def finetuned(ray_cluster, tmp_path_factory):
    """(base HF folder, merged HF folder, adapter folder) of one short fine-tune."""
    root = tmp_path_factory.mktemp("generate")
    hf = _hf_tiny_llama(root / "hf")
    data = write_chat_file(root / "chat.json", sample_conversations(8))
    cfg = load_config(
        "tiny/llama3_lora_cpu",
        [
            *fast_overrides(root / "out", data),
            f"checkpointer._component_={HF_CHECKPOINTER}",
            f"checkpointer.checkpoint_dir={hf}",
            "checkpointer.checkpoint_files=[model.safetensors]",
            "checkpointer.model_type=LLAMA3",
            f"checkpointer.output_dir={root / 'ckpt'}",
            "max_steps=3",
            "optimizer.lr=5e-2",
            "lr_scheduler.num_warmup_steps=0",
            "log_peak_memory_stats=False",
        ],
    )
    get_recipe("lora_finetune_single_device")(cfg)
    epoch = root / "ckpt" / "epoch_0"
    return hf, epoch / "model", epoch


def _config(model: dict, checkpoint_dir: Path, **keys) -> dict:
    cfg = load_config("tiny/llama3_generate_cpu")
    cfg.update(
        model=dict(model),
        checkpointer={
            "_component_": HF_CHECKPOINTER,
            "checkpoint_dir": str(checkpoint_dir),
            "checkpoint_files": [next(checkpoint_dir.glob("model*.safetensors")).name],
            "model_type": "LLAMA3",
            "output_dir": str(checkpoint_dir.parent / "unused"),  # generate writes nothing
        },
        adapter=None,
        max_new_tokens=MAX_NEW,
        temperature=0,
        top_k=None,
        prompt={"system": None, "user": "Tell me about the moon."},
    )
    cfg.update(keys)
    return cfg


def _hf_greedy(folder: Path, prompt: list[int], stop_tokens: list[int]) -> list[int]:
    model = transformers.LlamaForCausalLM.from_pretrained(folder).eval()
    with torch.no_grad():
        out = model.generate(
            torch.tensor([prompt]),
            attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
            max_new_tokens=MAX_NEW,
            do_sample=False,
            eos_token_id=stop_tokens,
            pad_token_id=stop_tokens[0],
        )
    return out[0, len(prompt) :].tolist()


@pytest.fixture(scope="module")
def merged_answer(finetuned):
    """What our `generate` recipe answers on the merged weights."""
    _, merged, _ = finetuned
    return get_recipe("generate")(_config(BASE_MODEL, merged))


def test_greedy_generate_on_merged_weights_equals_transformers(finetuned, merged_answer):
    hf, merged, _ = finetuned
    tokenizer = instantiate(load_config("tiny/llama3_generate_cpu")["tokenizer"], key="tokenizer")
    stop_tokens = list(tokenizer.stop_tokens)
    expected = _hf_greedy(merged, merged_answer["prompt_tokens"], stop_tokens)
    assert merged_answer["tokens"] == expected
    assert len(expected) >= 1
    # The fine-tune changed what the model says, so the comparison is not of two base models.
    assert _hf_greedy(hf, merged_answer["prompt_tokens"], stop_tokens) != expected


def test_unmerged_adapter_on_base_weights_gives_the_same_tokens(finetuned, merged_answer, capsys):
    hf, _, adapter = finetuned
    answer = get_recipe("generate")(_config(LORA_MODEL, hf, adapter=str(adapter)))
    assert answer["tokens"] == merged_answer["tokens"]
    printed = capsys.readouterr().out
    assert printed.startswith(answer["text"] + "\n")
    assert f"{len(answer['tokens'])} tokens in " in printed and "tokens/s; stopped by" in printed


def test_an_adapter_that_peft_saved_gives_the_same_tokens(finetuned, merged_answer, tmp_path):
    peft = pytest.importorskip("peft")
    hf, _, adapter = finetuned
    base = transformers.LlamaForCausalLM.from_pretrained(hf)
    peft.PeftModel.from_pretrained(base, adapter).save_pretrained(tmp_path / "peft")
    assert json.loads((tmp_path / "peft/adapter_config.json").read_text())["r"] == 4
    answer = get_recipe("generate")(_config(LORA_MODEL, hf, adapter=str(tmp_path / "peft")))
    assert answer["tokens"] == merged_answer["tokens"]


def test_kv_cache_path_equals_no_cache_path(finetuned):
    hf, _, adapter = finetuned
    sampled = dict(temperature=1.0, top_k=50, seed=7, max_new_tokens=12)
    answers = {
        (kv, greedy): get_recipe("generate")(
            _config(
                LORA_MODEL,
                hf,
                adapter=str(adapter),
                enable_kv_cache=kv,
                **({} if greedy else sampled),
            )  # fmt: skip
        )["tokens"]
        for kv in (True, False)
        for greedy in (True, False)
    }
    assert answers[True, True] == answers[False, True]
    assert answers[True, False] == answers[False, False]
    assert answers[True, False] != answers[True, True]  # sampling did sample


def test_batch_generation_of_50_prompts_equals_50_single_calls(finetuned, tmp_path):
    hf, _, adapter = finetuned
    prompts = [{"prompt": f"Question {i}: what is {i} plus {i}?"} for i in range(49)]
    lines = [json.dumps(p) for p in prompts]
    lines.insert(7, "{not json")  # one bad line: answered with its error, the rest go on
    lines.append(json.dumps({"messages": [{"role": "user", "content": "Hi there"}]}))
    (tmp_path / "prompts.jsonl").write_text("\n".join(lines) + "\n")
    cfg = _config(
        LORA_MODEL,
        hf,
        adapter=str(adapter),
        prompts_file=str(tmp_path / "prompts.jsonl"),
        output_file=str(tmp_path / "answers.jsonl"),
        ray={"cpus_per_actor": 0.5},
    )
    totals = get_recipe("generate_batch")(cfg)
    assert totals["num_actors"] == 2 and totals["prompts"] == 51 and totals["errors"] == 1
    records = [json.loads(line) for line in (tmp_path / "answers.jsonl").read_text().splitlines()]
    assert [r["line"] for r in records] == list(range(1, 52))
    bad = records.pop(7)
    assert bad["completion"] is None and "not a prompt row" in bad["error"]

    single = _config(LORA_MODEL, hf, adapter=str(adapter))
    chat = ChatModel(single, parse_generate_settings(single))
    for record, text in zip(records, [p["prompt"] for p in prompts] + ["Hi there"], strict=True):
        answer = chat.answer([Message("user", text)])
        assert record["prompt"] == text
        assert record["tokens"] == answer.generation.tokens, text
        assert record["completion"] == answer.text
        assert record["stop_reason"] == answer.generation.stop_reason

"""What `raytune-chat preview` prints for tool calls, tool results and reasoning (no Ray)."""

from __future__ import annotations

from raytune_chat.data import OpenAIToMessages, tokenize_row
from raytune_chat.models.llama3 import llama3_tokenizer
from raytune_chat.recipes._preview import render_sample
from tests.assets.tool_chats import expected_call, expected_result, openai_tool_row


def _trained_and_masked(rendered: str) -> tuple[str, str]:
    """Split a colour-free rendering into the text inside [[...]] and the text outside."""
    trained, masked, rest = [], [], rendered
    while "[[" in rest:
        before, rest = rest.split("[[", 1)
        inside, rest = rest.split("]]", 1)
        masked.append(before)
        trained.append(inside)
    masked.append(rest)
    return "".join(trained), "".join(masked)


def test_tool_call_result_and_reasoning_show_in_their_mask_colours(bpe_path):
    tok = llama3_tokenizer(str(bpe_path))
    row = openai_tool_row(1)
    row["messages"][-1]["reasoning_content"] = "The tool answered."
    sample = tokenize_row(row, message_transform=OpenAIToMessages(reasoning="mask"), tokenizer=tok)

    def decode(ids):
        return tok.decode(ids, truncate_at_eos=False, skip_special_tokens=False)

    trained, masked = _trained_and_masked(
        render_sample(sample["tokens"], sample["labels"], decode, color=False)
    )
    assert expected_call(1) in trained and "It is 10°F in Zürich" in trained
    assert expected_result(1) in masked and "Given the following functions" in masked
    assert "<think>\nThe tool answered.\n</think>" in masked and "think" not in trained
    colored = render_sample(sample["tokens"], sample["labels"], decode, color=True)
    assert "\033[1;32m" in colored and "\033[2m" in colored

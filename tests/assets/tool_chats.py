"""Tool-calling conversations, the same ones in OpenAI form and in LLaMA-Factory's ShareGPT form.

Each conversation: (a system message for even rows,) a user question, one assistant tool call,
the tool's result, the final answer; the row's tool schemas in a `tools` column (a list in
some OpenAI rows, a JSON string in the others and in every ShareGPT row, as LLaMA-Factory
stores them).
"""

from __future__ import annotations

import json
from typing import Any

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "description": "the city's name"},
                    "unit": {"type": "string", "enum": ["C", "F"]},
                },
                "required": ["city"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "convert_currency",
            "description": "Convert an amount of money",
            "parameters": {
                "type": "object",
                "properties": {"amount": {"type": "number"}, "to": {"type": "string"}},
            },
        },
    },
]
CITIES = ["Paris", "Zürich", "Tokyo", "São Paulo", "Nairobi", "Reykjavík", "Lima", "Hanoi"]
SYSTEM = "You are a helpful assistant with tools."


def _parts(i: int) -> dict[str, Any]:
    city, unit = CITIES[i % len(CITIES)], "CF"[i % 2]
    temperature = 3 + (i * 7) % 29
    return {
        "question": f"What is the weather in {city} right now, in °{unit}? (#{i})",
        "arguments": {"city": city, "unit": unit},
        "result": {"city": city, "temperature": temperature, "unit": unit},
        "answer": f"It is {temperature}°{unit} in {city} right now.",
    }


def openai_tool_row(i: int) -> dict[str, Any]:
    """Row ``i`` in OpenAI form: ``messages`` with ``tool_calls`` and a ``tool`` message."""
    p = _parts(i)
    messages = [{"role": "system", "content": SYSTEM}] if i % 2 == 0 else []
    messages += [
        {"role": "user", "content": p["question"]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": f"call_{i}",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": json.dumps(p["arguments"])},
                }
            ],
        },
        {"role": "tool", "tool_call_id": f"call_{i}", "content": json.dumps(p["result"])},
        {"role": "assistant", "content": p["answer"]},
    ]
    return {"messages": messages, "tools": TOOLS if i % 3 else json.dumps(TOOLS)}


def sharegpt_tool_row(i: int) -> dict[str, Any]:
    """The same conversation as `openai_tool_row(i)` in LLaMA-Factory's ShareGPT form."""
    p = _parts(i)
    turns = [{"from": "system", "value": SYSTEM}] if i % 2 == 0 else []
    turns += [
        {"from": "human", "value": p["question"]},
        {
            "from": "function_call",
            "value": json.dumps({"name": "get_weather", "arguments": p["arguments"]}),
        },
        {"from": "observation", "value": json.dumps(p["result"])},
        {"from": "gpt", "value": p["answer"]},
    ]
    return {"conversations": turns, "tools": json.dumps(TOOLS)}


def expected_call(i: int) -> str:
    """The call as the trained assistant turn must show it (Meta's JSON form)."""
    arguments = json.dumps(_parts(i)["arguments"], ensure_ascii=False)
    return '{"name": "get_weather", "parameters": ' + arguments + "}"


def expected_result(i: int) -> str:
    return json.dumps(_parts(i)["result"])


def answer(i: int) -> str:
    return _parts(i)["answer"]

"""`generate`: answer one prompt (or chat in turns) with a model and, optionally, its adapter.

Run it as ``raytune-chat run generate --config generation`` (torchtune's config keys:
`model`, `checkpointer`, `tokenizer`, `device`, `dtype`, `seed`, `prompt.system`,
`prompt.user`, `max_new_tokens`, `temperature`, `top_k`, `enable_kv_cache`), with
``adapter=<folder>`` to apply a PEFT adapter on the base weights unmerged, and ``--chat`` to
talk in turns. Plain torch on this machine: no Ray. For many prompts at once, use
`generate_batch`.

The story: read the settings, build the model (base weights, adapter, KV caches), build the
prompt in the training template, generate until a stop token or `max_new_tokens`, print the
text and the speed.
"""

from __future__ import annotations

from typing import Any

from raytune_chat.data import Message
from raytune_chat.generation import Answer, ChatModel, parse_generate_settings

__all__ = ["recipe_main"]


def recipe_main(cfg: dict[str, Any]) -> dict[str, Any]:
    """Generate from `cfg`'s prompt (or chat, with `chat: True`); return what was generated.

    Returns:
        ``{"prompt_tokens", "tokens", "text", "stop_reason", "tokens_per_second"}`` of the
        (last) answer.

    Raises:
        ConfigError: naming the key of an invalid config, before anything is built.
    """
    settings = parse_generate_settings(cfg)
    chat_model = ChatModel(cfg, settings)
    system = [Message("system", settings.prompt.system)] if settings.prompt.system else []
    if settings.chat:
        return _chat(chat_model, system)
    answer = chat_model.answer([*system, Message("user", settings.prompt.user)])
    print(answer.text)
    return _report(answer)


def _chat(chat_model: ChatModel, history: list[Message]) -> dict[str, Any]:
    """Read user turns from stdin until an empty line or end of input; answer each one with
    the whole conversation so far as the prompt."""
    last: dict[str, Any] = {}
    print("raytune-chat: chat; an empty line or Ctrl-D ends it")
    while True:
        try:
            user = input("user> ").strip()
        except EOFError:
            break
        if not user:
            break
        history.append(Message("user", user))
        answer = chat_model.answer(history)
        print(f"assistant> {answer.text}")
        history.append(Message("assistant", answer.text))
        last = _report(answer)
    return last


def _report(answer: Answer) -> dict[str, Any]:
    """Print the speed and why generation stopped; return the answer as a dict."""
    result = answer.generation
    print(
        f"raytune-chat: {len(result.tokens)} tokens in {result.seconds:.2f} s, "
        f"{result.tokens_per_second:.2f} tokens/s; stopped by {result.stop_reason}",
        flush=True,
    )
    return {
        "prompt_tokens": answer.prompt,
        "tokens": result.tokens,
        "text": answer.text,
        "stop_reason": result.stop_reason,
        "tokens_per_second": result.tokens_per_second,
    }

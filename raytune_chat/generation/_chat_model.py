"""A model and its tokenizer ready to answer chats: what one `generate` run, or one actor of
`generate_batch`, holds."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from raytune_chat.config import ConfigError, instantiate
from raytune_chat.data import Message
from raytune_chat.generation._generate import Generation, generate
from raytune_chat.generation._model import load_generation_model
from raytune_chat.generation._prompts import chat_prompt
from raytune_chat.generation._settings import GenerateSettings

__all__ = ["Answer", "ChatModel", "decode_known", "generation_device"]


def generation_device(name: str) -> torch.device:
    """The config's `device` ("cuda" or "cpu") as a torch device.

    Raises:
        ConfigError: on ``device`` when it is cuda and no GPU is visible.
    """
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device", "is cuda but no GPU is visible here; set device=cpu")
    return torch.device(name)


@dataclass(frozen=True)
class Answer:
    """One answer: the prompt's ids, the generation and its text (special tokens dropped)."""

    prompt: list[int]
    generation: Generation
    text: str


class ChatModel:
    """The config's tokenizer and model (base + unmerged adapter), KV caches per
    `enable_kv_cache`, answering one conversation at a time.

    Sampling draws from a generator seeded with `seed` anew for every prompt, so a prompt
    gets the same answer whether it is asked alone or among many (in any order).

    Args:
        cfg: the resolved generation config.
        settings: its parsed settings.
    """

    def __init__(self, cfg: dict[str, Any], settings: GenerateSettings) -> None:
        self.settings = settings
        self.device = generation_device(settings.device)
        if settings.seed is not None:
            torch.manual_seed(settings.seed)  # random base weights, when there is no checkpoint
        self.tokenizer = instantiate(cfg["tokenizer"], key="tokenizer")
        self.model = load_generation_model(cfg, device=self.device, dtype=settings.dtype)
        if settings.enable_kv_cache:
            self.model.setup_caches(batch_size=1, dtype=self.model.tok_embeddings.weight.dtype)

    def _generator(self) -> torch.Generator | None:
        if self.settings.seed is None:
            return None
        return torch.Generator(device=self.device).manual_seed(self.settings.seed)

    def answer(self, messages: Sequence[Message]) -> Answer:
        """Generate the assistant's next message after `messages`."""
        prompt = chat_prompt(self.tokenizer, messages)
        result = generate(
            self.model,
            prompt,
            max_new_tokens=self.settings.max_new_tokens,
            stop_tokens=self.tokenizer.stop_tokens,
            temperature=self.settings.temperature,
            top_k=self.settings.top_k,
            generator=self._generator(),
        )
        return Answer(prompt, result, decode_known(self.tokenizer, result.tokens))


def decode_known(tokenizer: Any, tokens: Sequence[int]) -> str:
    """Decode `tokens`, each id the tokenizer cannot decode written as U+FFFD.

    A model's vocabulary may be larger than its tokenizer's (padded, or the cl100k stand-in
    under Llama3's 128256 ids); a model that has not learned that yet may produce such ids,
    and its answer must still print.

    Example:
        >>> from raytune_chat.config import asset_path
        >>> from raytune_chat.models.llama3 import llama3_tokenizer
        >>> tok = llama3_tokenizer(str(asset_path("cl100k_base")))
        >>> decode_known(tok, tok.encode("Hi", add_bos=False, add_eos=False) + [110000])
        'Hi\ufffd'
    """
    try:
        return tokenizer.decode(list(tokens))
    except (KeyError, ValueError):
        pass
    parts, run = [], []
    for token in tokens:
        try:
            tokenizer.decode([token])
        except (KeyError, ValueError):
            parts += [tokenizer.decode(run), "\ufffd"]
            run = []
        else:
            run.append(token)
    return "".join([*parts, tokenizer.decode(run)])

"""Tokenizer backends (tiktoken BPE, HF ``tokenizer.json``, SentencePiece) behind a tiny protocol.

Chat formats live one layer up, in `raytune_chat.models.<family>`.
"""

from raytune_chat.modules.tokenizers._chat_base import ChatTokenizer
from raytune_chat.modules.tokenizers._hf_special_tokens import parse_hf_tokenizer_json
from raytune_chat.modules.tokenizers._hf_tokenizer import (
    HuggingFaceBaseTokenizer,
    bpe_base_tokenizer,
    is_tokenizer_json,
)
from raytune_chat.modules.tokenizers._no_special_tokens import (
    tokenize_messages_no_special_tokens,
)
from raytune_chat.modules.tokenizers._protocol import (
    BaseTokenizer,
    ModelTokenizer,
    TokenizedMessages,
)
from raytune_chat.modules.tokenizers._sentencepiece import SentencePieceBaseTokenizer
from raytune_chat.modules.tokenizers._sentencepiece_chat import SentencePieceChatTokenizer
from raytune_chat.modules.tokenizers._tiktoken import TikTokenBaseTokenizer
from raytune_chat.modules.tokenizers._truncation import TruncationType, truncate

__all__ = [
    "BaseTokenizer",
    "ChatTokenizer",
    "HuggingFaceBaseTokenizer",
    "ModelTokenizer",
    "SentencePieceBaseTokenizer",
    "SentencePieceChatTokenizer",
    "TikTokenBaseTokenizer",
    "TokenizedMessages",
    "TruncationType",
    "bpe_base_tokenizer",
    "is_tokenizer_json",
    "parse_hf_tokenizer_json",
    "tokenize_messages_no_special_tokens",
    "truncate",
]

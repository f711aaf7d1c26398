"""Model building blocks: attention, feed-forward, norms, positions, the decoder."""

from raytune_chat.modules.attention import MultiHeadAttention
from raytune_chat.modules.feed_forward import FeedForward
from raytune_chat.modules.position_embeddings import Llama3ScaledRoPE, RotaryPositionalEmbeddings
from raytune_chat.modules.rms_norm import RMSNorm
from raytune_chat.modules.transformer import (
    TiedLinear,
    TransformerDecoder,
    TransformerSelfAttentionLayer,
)

__all__ = [
    "FeedForward",
    "Llama3ScaledRoPE",
    "MultiHeadAttention",
    "RMSNorm",
    "RotaryPositionalEmbeddings",
    "TiedLinear",
    "TransformerDecoder",
    "TransformerSelfAttentionLayer",
]

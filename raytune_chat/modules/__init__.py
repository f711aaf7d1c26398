"""Model building blocks: attention, feed-forward, norms, positions, the decoder.

The blocks need torch and are imported on first use, so that `raytune_chat.modules.tokenizers`
(torch-free) stays cheap to import in tokenizer-only processes.
"""

from typing import TYPE_CHECKING

from raytune_chat._lazy import lazy_exports

if TYPE_CHECKING:
    from raytune_chat.modules.attention import (
        MultiHeadAttention,
    )
    from raytune_chat.modules.feed_forward import (
        FeedForward,
    )
    from raytune_chat.modules.kv_cache import (
        KVCache,
    )
    from raytune_chat.modules.position_embeddings import (
        Llama3ScaledRoPE,
        RotaryPositionalEmbeddings,
    )
    from raytune_chat.modules.rms_norm import (
        RMSNorm,
    )
    from raytune_chat.modules.transformer import (
        TiedLinear,
        TransformerDecoder,
        TransformerSelfAttentionLayer,
    )

__getattr__ = lazy_exports(__name__, __file__)

__all__ = [
    "FeedForward",
    "KVCache",
    "Llama3ScaledRoPE",
    "MultiHeadAttention",
    "RMSNorm",
    "RotaryPositionalEmbeddings",
    "TiedLinear",
    "TransformerDecoder",
    "TransformerSelfAttentionLayer",
]

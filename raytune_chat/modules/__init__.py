"""Model building blocks: attention, feed-forward, norms, positions, the decoder.

The blocks need torch and are imported on first use, so that `raytune_chat.modules.tokenizers`
(torch-free) stays cheap to import in tokenizer-only processes.
"""

from raytune_chat._lazy import lazy_exports

__getattr__ = lazy_exports(
    __name__,
    {
        "FeedForward": "raytune_chat.modules.feed_forward",
        "Llama3ScaledRoPE": "raytune_chat.modules.position_embeddings",
        "MultiHeadAttention": "raytune_chat.modules.attention",
        "RMSNorm": "raytune_chat.modules.rms_norm",
        "RotaryPositionalEmbeddings": "raytune_chat.modules.position_embeddings",
        "TiedLinear": "raytune_chat.modules.transformer",
        "TransformerDecoder": "raytune_chat.modules.transformer",
        "TransformerSelfAttentionLayer": "raytune_chat.modules.transformer",
    },
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

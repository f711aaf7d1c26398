"""raytune_chat: fine-tune chat models on your own conversations, streaming on Ray.

torchtune's chat fine-tuning path with the same public names, so `torchtune.` becomes
`raytune_chat.` in code and YAML.
"""

__version__ = "0.1.0"

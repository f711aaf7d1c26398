"""Model families (builders, tokenizers) and checkpoint key conversion."""

"""The language models: their networks, checkpoints, tokenizer, and writing music with them."""

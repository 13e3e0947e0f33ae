"""Training: the corpus, its splits and token arrays, and the training loop."""

"""Sample features for data selection (SAERL, issue 24): a causal LM's pooled activations at one
layer (activations), sparse-autoencoder codes of them through SAELens (sae), and the TF-IDF
baseline (text_features). Each turns rows into an [n, d] matrix, so a selector runs on any."""

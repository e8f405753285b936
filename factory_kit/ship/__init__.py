"""Shipping a trained model where it is used: the merged Hugging Face folder, GGUF files for
llama.cpp and Ollama (with a Modelfile), and a Hub repository with a generated model card.
`factory-kit export RECIPE` does what the recipe's ``export:`` block says (see ``pipeline``)."""

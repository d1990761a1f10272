"""Models: resolving a model argument to a Hugging Face directory, streaming tensors, and Depth Up-Scaling."""

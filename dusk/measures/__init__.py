"""Measures that see small effects: held-out perplexity of text, held-out loss on instruction data, held-out reward
accuracy and margin on preference data, each with its standard error over sequences (or examples, or pairs)."""

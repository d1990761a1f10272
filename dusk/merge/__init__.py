"""Model merging (linear, task arithmetic, TIES, DARE, SLERP, passthrough), streaming, from mergekit-style configs.

dusk merge merge.yaml --out runs/merged
"""

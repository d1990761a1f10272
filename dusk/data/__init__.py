"""Data: named datasets, record formats, mixtures, and benchmark decontamination."""

"""Evaluation: the H6 suite (ARC, HellaSwag, MMLU, TruthfulQA, Winogrande, GSM8K) and its engine."""

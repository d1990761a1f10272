"""Training: one loop (dusk.train.loop) for continued pretraining, SFT, DPO and sDPO, full or LoRA, resumable.

dusk sft --model smollm2-135m --data alpaca_gpt4 --max-steps 30 --seq-len 256 --out runs/sft
"""

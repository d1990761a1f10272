"""dusk, the Depth Up-Scaling Kit: SOLAR's recipe (DUS, training, merging, evaluation) from one recipe file.

dusk upscale smollm2-135m --drop 8 --out runs/smollm2-dus
"""

__version__ = "0.1.0"

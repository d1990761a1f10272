"""ModelTensors reads a tensor whole or by rows straight from its safetensors file."""

from pathlib import Path

import torch

from dusk.merge.io import row_blocks
from dusk.models.safetensors_io import ModelTensors


def test_row_blocks_read_back_the_whole_tensor(tiny_llama: Path) -> None:
    tensors = ModelTensors(tiny_llama)
    for name in tensors.names():
        spec = tensors.spec(name)
        blocks = row_blocks(spec, block_bytes=max(1, spec.nbytes // 3))  # several blocks for any 2-D tensor
        parts = [tensors.read_rows(name, start, end) for start, end in blocks]
        assert torch.equal(torch.cat(parts) if spec.shape else parts[0], tensors.read(name)), name

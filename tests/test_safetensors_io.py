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


def test_sizes_in_every_unit_and_a_bad_one_named() -> None:
    import pytest

    from dusk.errors import DuskError
    from dusk.models.safetensors_io import parse_size

    assert [parse_size(s) for s in ("512", "2KB", "1.5MiB", "3GB", "80GiB", "2TB", "1TiB")] == [
        512, 2000, 1572864, 3 * 10**9, 80 * 2**30, 2 * 10**12, 2**40,
    ]  # fmt: skip
    with pytest.raises(DuskError, match="size '80 PiB': expected a byte count or a number with .*TiB"):
        parse_size("80 PiB")

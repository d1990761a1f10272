"""The `shard_size` option of every command that writes a model (upscale, merge): text such as 2GiB or 500MB,
checked when the config is built.

    python -c "from dusk.models.shard_size import check_shard_size; print(check_shard_size('2GiB'))"
"""

from typing import Annotated

from pydantic import AfterValidator


def check_shard_size(value: str) -> str:
    """The text itself, once `dusk.models.safetensors_io.shard_bytes` reads it as a size."""
    from dusk.models.safetensors_io import shard_bytes

    shard_bytes(value)
    return value


ShardSize = Annotated[str, AfterValidator(check_shard_size)]

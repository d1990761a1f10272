"""Stream tensors out of and into safetensors files, one tensor at a time, without holding a model in memory.

The format is simple (an 8-byte little-endian header length, a JSON header of name -> dtype, shape and byte
offsets, then the raw bytes), so dusk reads headers itself, copies tensors by seek-and-read, and writes each
output shard's header first and its tensors after, straight from the source. Peak memory is one tensor.

    src = ModelTensors(Path("runs/smollm2-dus"))
    spec = src.spec("model.embed_tokens.weight")   # TensorSpec(name, dtype='F32', shape=(49152, 576))
"""

import json
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from dusk.errors import DuskError

DTYPE_BYTES = {
    "F64": 8,
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
}
TORCH_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
    "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2,
}
SAFETENSORS_DTYPES = {v: k for k, v in TORCH_DTYPES.items()}
INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"
DEFAULT_SHARD_BYTES = 2 * 1024**3


@dataclass(frozen=True)
class TensorSpec:
    """A tensor's name, safetensors dtype string and shape: enough to lay out a file before any data is read."""

    name: str
    dtype: str
    shape: tuple[int, ...]

    @property
    def numel(self) -> int:
        count = 1
        for dim in self.shape:
            count *= dim
        return count

    @property
    def nbytes(self) -> int:
        return self.numel * DTYPE_BYTES[self.dtype]


@dataclass(frozen=True)
class _Entry:
    spec: TensorSpec
    file: Path
    start: int  # absolute byte offset of the tensor's data in `file`


def read_header(path: Path) -> tuple[dict, int]:
    """Return (header dict, absolute offset where tensor data starts) of one safetensors file."""
    try:
        with open(path, "rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(length))
    except (OSError, struct.error, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DuskError(f"{path}: not a readable safetensors file ({exc})") from exc
    return header, 8 + length


def _entries_of_file(path: Path) -> Iterator[_Entry]:
    header, data_start = read_header(path)
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, _end = info["data_offsets"]
        yield _Entry(TensorSpec(name, info["dtype"], tuple(info["shape"])), path, data_start + begin)


def safetensors_files(model_dir: Path) -> list[Path]:
    """The safetensors files of a model directory, from its index when sharded."""
    index = model_dir / INDEX_NAME
    if index.exists():
        weight_map = json.loads(index.read_text())["weight_map"]
        return sorted({model_dir / name for name in weight_map.values()})
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise DuskError(f"{model_dir}: no *.safetensors weights (dusk reads weights only through safetensors)")
    return files


class ModelTensors:
    """Lazy, read-only access to every tensor of a model directory's safetensors files, by name."""

    def __init__(self, model_dir: Path):
        self.model_dir = Path(model_dir)
        self._entries: dict[str, _Entry] = {}
        for file in safetensors_files(self.model_dir):
            for entry in _entries_of_file(file):
                self._entries[entry.spec.name] = entry

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def spec(self, name: str) -> TensorSpec:
        if name not in self._entries:
            raise DuskError(f"{self.model_dir}: no tensor named {name!r}")
        return self._entries[name].spec

    def read_bytes(self, name: str) -> bytearray:
        """The tensor's raw little-endian bytes, exactly as stored."""
        entry = self._entries[name]
        return _read_span(entry, 0, entry.spec.nbytes)

    def read(self, name: str) -> torch.Tensor:
        """The tensor itself (a fresh copy in memory)."""
        spec = self.spec(name)
        return _as_tensor(self.read_bytes(name), spec.dtype, spec.shape)

    def read_rows(self, name: str, start: int, end: int) -> torch.Tensor:
        """Rows [start, end) along dim 0, read straight from the file: a fresh tensor of that block only.

        A scalar (no dim 0) is read whole.
        """
        spec = self.spec(name)
        if not spec.shape:
            return self.read(name)
        row_bytes = spec.nbytes // spec.shape[0] if spec.shape[0] else 0
        raw = _read_span(self._entries[name], start * row_bytes, (end - start) * row_bytes)
        return _as_tensor(raw, spec.dtype, (end - start, *spec.shape[1:]))


def _read_span(entry: _Entry, offset: int, size: int) -> bytearray:
    """`size` bytes of the tensor's data, from `offset` bytes into it."""
    buffer = bytearray(size)
    with open(entry.file, "rb") as handle:
        handle.seek(entry.start + offset)
        if handle.readinto(buffer) != len(buffer):
            raise DuskError(f"{entry.file}: truncated data for tensor {entry.spec.name!r}")
    return buffer


def _as_tensor(raw: bytearray, dtype: str, shape: tuple[int, ...]) -> torch.Tensor:
    """A tensor over `raw` (safetensors dtype string), which it takes over without a copy."""
    if not raw:
        return torch.empty(shape, dtype=TORCH_DTYPES[dtype])
    return torch.frombuffer(raw, dtype=TORCH_DTYPES[dtype]).reshape(shape)


def tensor_bytes(tensor: torch.Tensor) -> memoryview:
    """A tensor's raw bytes (any dtype, bf16 included) without a copy when it is contiguous."""
    flat = tensor.detach().contiguous().reshape(-1)
    return memoryview(flat.view(torch.uint8).numpy())


def plan_shards(specs: list[TensorSpec], max_shard_bytes: int) -> list[list[TensorSpec]]:
    """Group tensors, in order, into shards of at most `max_shard_bytes` (a larger tensor gets a shard alone)."""
    if max_shard_bytes <= 0:
        raise DuskError(f"shard size must be positive, got {max_shard_bytes}")
    shards: list[list[TensorSpec]] = [[]]
    size = 0
    for spec in specs:
        if shards[-1] and size + spec.nbytes > max_shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(spec)
        size += spec.nbytes
    return shards


def _header_bytes(specs: list[TensorSpec], metadata: dict[str, str]) -> bytes:
    header: dict = {"__metadata__": metadata}
    offset = 0
    for spec in specs:
        header[spec.name] = {
            "dtype": spec.dtype,
            "shape": list(spec.shape),
            "data_offsets": [offset, offset + spec.nbytes],
        }
        offset += spec.nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # the format aligns the data start to 8 bytes
    return struct.pack("<Q", len(raw)) + raw


TensorSource = Callable[[TensorSpec], "bytes | bytearray | memoryview | torch.Tensor"]


def _write_shard(
    path: Path,
    specs: list[TensorSpec],
    source: TensorSource,
    metadata: dict[str, str],
    on_tensor: Callable[[TensorSpec], None],
) -> None:
    with open(path, "wb") as handle:
        handle.write(_header_bytes(specs, metadata))
        for spec in specs:
            data = source(spec)
            if isinstance(data, torch.Tensor):
                if tuple(data.shape) != spec.shape or SAFETENSORS_DTYPES.get(data.dtype) != spec.dtype:
                    raise DuskError(
                        f"tensor {spec.name}: produced {data.dtype} {tuple(data.shape)}, "
                        f"planned {spec.dtype} {spec.shape}"
                    )
                data = tensor_bytes(data)
            if len(data) != spec.nbytes:
                raise DuskError(f"tensor {spec.name}: produced {len(data)} bytes, planned {spec.nbytes}")
            handle.write(data)
            on_tensor(spec)


def write_sharded(
    out_dir: Path,
    specs: Iterable[TensorSpec],
    source: TensorSource,
    max_shard_bytes: int = DEFAULT_SHARD_BYTES,
    on_tensor: Callable[[TensorSpec], None] | None = None,
) -> list[Path]:
    """Write tensors into `out_dir` as HF-style safetensors (one file, or shards plus an index).

    `source(spec)` is called once per tensor, in order, and returns its bytes or tensor; nothing else is held.
    """
    shards = plan_shards(list(specs), max_shard_bytes)
    total = len(shards)
    names = [SINGLE_NAME] if total == 1 else [f"model-{i + 1:05d}-of-{total:05d}.safetensors" for i in range(total)]
    metadata = {"format": "pt"}
    for name, shard in zip(names, shards, strict=True):
        _write_shard(out_dir / name, shard, source, metadata, on_tensor or (lambda _spec: None))
    if total > 1:
        weight_map = {spec.name: name for name, shard in zip(names, shards, strict=True) for spec in shard}
        size = sum(spec.nbytes for shard in shards for spec in shard)
        index = {"metadata": {"total_size": size}, "weight_map": weight_map}
        (out_dir / INDEX_NAME).write_text(json.dumps(index, indent=2) + "\n")
    return [out_dir / name for name in names]


def parse_size(text: str | int) -> int:
    """Parse a size such as `500MB`, `2GB`, `1GiB` or a plain byte count."""
    if isinstance(text, int):
        return text
    units = {"kib": 1024, "mib": 1024**2, "gib": 1024**3, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "b": 1}
    lowered = text.strip().lower()
    for unit, factor in units.items():
        if lowered.endswith(unit) and lowered[: -len(unit)].strip().replace(".", "", 1).isdigit():
            return int(float(lowered[: -len(unit)]) * factor)
    if lowered.isdigit():
        return int(lowered)
    raise DuskError(f"size {text!r}: expected a byte count or a number with KB/MB/GB/KiB/MiB/GiB")

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


MAX_HEADER_BYTES = 100 * 1024**2  # the safetensors library's own limit on the JSON header


def read_header(path: Path) -> tuple[dict, int]:
    """Return (header dict, absolute offset where tensor data starts) of one safetensors file.

    Every field is checked against the file before anything trusts it: the header length against the file size,
    each tensor's dtype, shape and data offsets (inside the file, and exactly dtype size x shape bytes long).
    """
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            raw_length = handle.read(8)
            if len(raw_length) < 8:
                raise DuskError(
                    f"{path}: not a safetensors file: {size} byte(s), too short for the 8-byte header length"
                )
            (length,) = struct.unpack("<Q", raw_length)
            if length > size - 8 or length > MAX_HEADER_BYTES:
                raise DuskError(
                    f"{path}: not a safetensors file (or truncated): its header length {length} exceeds "
                    f"the {size - 8} byte(s) after the length field"
                )
            text = handle.read(length)
    except OSError as exc:
        raise DuskError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    try:
        header = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DuskError(f"{path}: not a safetensors file: its header is not JSON ({exc})") from exc
    if not isinstance(header, dict):
        raise DuskError(f"{path}: not a safetensors file: its header is a JSON {type(header).__name__}, not an object")
    data_size = size - 8 - length
    for name, info in header.items():
        if name != "__metadata__":
            _check_entry(path, name, info, data_size)
    return header, 8 + length


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_entry(path: Path, name: str, info: object, data_size: int) -> None:
    """One header entry must be {dtype, shape, data_offsets} describing bytes inside the file's data section."""
    where = f"{path}: tensor {name!r}"
    if not isinstance(info, dict):
        raise DuskError(f"{where}: header entry is not an object with dtype, shape and data_offsets")
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if dtype not in DTYPE_BYTES:
        raise DuskError(f"{where}: unknown dtype {dtype!r}; expected one of {', '.join(DTYPE_BYTES)}")
    if not isinstance(shape, list) or not all(_is_count(dim) for dim in shape):
        raise DuskError(f"{where}: shape {shape!r} is not a list of non-negative integers")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_count(o) for o in offsets)):
        raise DuskError(f"{where}: data_offsets {offsets!r} is not a pair of non-negative integers")
    begin, end = offsets
    if not begin <= end <= data_size:
        raise DuskError(
            f"{where}: data_offsets [{begin}, {end}] lie outside the file's {data_size} data byte(s) "
            "(truncated or corrupt file)"
        )
    expected = TensorSpec(name, dtype, tuple(shape)).nbytes
    if end - begin != expected:
        raise DuskError(
            f"{where}: data_offsets span {end - begin} byte(s) but dtype {dtype} x shape {shape} needs {expected}"
        )


def _entries_of_file(path: Path) -> Iterator[_Entry]:
    header, data_start = read_header(path)
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, _end = info["data_offsets"]
        yield _Entry(TensorSpec(name, info["dtype"], tuple(info["shape"])), path, data_start + begin)


def read_index(index: Path) -> dict[str, str]:
    """The weight_map (tensor name -> shard file name) of a sharded model's index JSON, checked."""
    try:
        data = json.loads(index.read_text())
    except OSError as exc:
        raise DuskError(f"{index}: cannot read ({exc.strerror or exc})") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DuskError(f"{index}: not JSON ({exc}); expected a safetensors index with a 'weight_map'") from exc
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise DuskError(f"{index}: expected a JSON object whose 'weight_map' maps tensor names to shard file names")
    return weight_map


def safetensors_files(model_dir: Path) -> list[Path]:
    """The safetensors files of a model directory, from its index when sharded (every shard must exist)."""
    index = model_dir / INDEX_NAME
    if index.exists():
        files = sorted({model_dir / name for name in read_index(index).values()})
        for file in files:
            if not file.is_file():
                raise DuskError(f"{index}: names shard {file.name}, which is missing from {model_dir}")
        return files
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


def check_output_not_input(out: Path, inputs: Iterable[Path]) -> None:
    """Refuse an output directory that is, or contains, an input model directory (replacing it would destroy the
    weights being read)."""
    target = Path(out).resolve()
    for directory in inputs:
        source = Path(directory).resolve()
        if source == target or target in source.parents:
            raise DuskError(f"output path {out}: it would replace the input model {directory}; choose another --out")


def check_finite(name: str, output: torch.Tensor, inputs: Callable[[], Iterable[torch.Tensor]], hint: str) -> None:
    """Refuse an output tensor holding NaN or infinity that its inputs did not hold (an overflow, a bad parameter).

    One pass over the output; the inputs (`inputs()` reads them) are looked at only when the output is not finite.
    """
    if not output.is_floating_point():
        return
    finite = torch.isfinite(output)
    if bool(finite.all()) or not all(bool(torch.isfinite(t).all()) for t in inputs() if t.is_floating_point()):
        return
    count = int(finite.numel() - finite.sum())
    raise DuskError(
        f"tensor {name}: the output holds {count} NaN or infinite value(s) although its inputs are finite ({hint}); "
        "nothing was written"
    )


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


SIZE_UNITS = "KB/MB/GB/TB/KiB/MiB/GiB/TiB"


def parse_size(text: str | int) -> int:
    """Parse a size such as `500MB`, `2GB`, `1GiB`, `1TiB` or a plain byte count."""
    if isinstance(text, int):
        return text
    units = {"kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}
    units |= {"kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4, "b": 1}
    lowered = text.strip().lower()
    for unit, factor in units.items():
        if lowered.endswith(unit) and lowered[: -len(unit)].strip().replace(".", "", 1).isdigit():
            return int(float(lowered[: -len(unit)]) * factor)
    if lowered.isdigit():
        return int(lowered)
    raise DuskError(f"size {text!r}: expected a byte count or a number with {SIZE_UNITS}")


def shard_bytes(text: str | int) -> int:
    """A maximum shard size (`2GiB`, `500MB`, a byte count) as a positive number of bytes."""
    try:
        size = parse_size(text)
    except DuskError as exc:
        raise DuskError(f"shard size {text!r}: expected a byte count or a number with {SIZE_UNITS}") from exc
    if size <= 0:
        raise DuskError(f"shard size {text!r}: must be at least 1 byte")
    return size

"""Where a model runs and in which dtype: `--device auto|cpu|cuda|cuda:N` and `--dtype auto|float32|bfloat16|float16`.

`auto` device = the first CUDA device when there is one, else the CPU; `auto` dtype = bfloat16 on CUDA, float32 on
the CPU. A device the machine does not have is refused at once, with one line (no traceback):

    python -c "from dusk.devices import resolve_device, resolve_dtype; d = resolve_device('auto'); \
print(d, resolve_dtype('auto', d))"

Config fields use `DeviceName` and `DtypeName` (syntax checked when the config is built, without importing torch);
the stage calls `resolve_device` / `resolve_dtype` before it loads anything.
"""

import re
from typing import Annotated, Literal

from pydantic import AfterValidator

from dusk.errors import DuskError

DTYPE_CHOICES = ("auto", "float32", "bfloat16", "float16")
_DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")
DEVICE_HELP = "auto (first CUDA device, else CPU), cpu, cuda or cuda:N"


def check_device_name(text: str) -> str:
    """A device flag's syntax: auto, cpu, cuda or cuda:N (whether the machine has it is checked by resolve_device)."""
    text = str(text).strip()
    if not _DEVICE_PATTERN.match(text):
        raise ValueError(f"expected {DEVICE_HELP}")
    return text


DeviceName = Annotated[str, AfterValidator(check_device_name)]
DtypeName = Literal["auto", "float32", "bfloat16", "float16"]


def cuda_device_count() -> int:
    """How many CUDA devices torch sees (0 without CUDA)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def resolve_device(name: str) -> str:
    """`cpu` or `cuda:N` for a device flag; refuse a CUDA device this machine does not have."""
    name = check_device_name_or_refuse(name)
    count = cuda_device_count()
    if name == "auto":
        return "cuda:0" if count else "cpu"
    if name == "cpu":
        return "cpu"
    if count == 0:
        raise DuskError(f"--device {name}: this machine has no CUDA device (torch sees none); use --device cpu or auto")
    index = int(name.partition(":")[2] or 0)
    if index >= count:
        raise DuskError(
            f"--device {name}: this machine has {count} CUDA device(s) (cuda:0 to cuda:{count - 1}); pick one of those"
        )
    return f"cuda:{index}"


def check_device_name_or_refuse(name: str) -> str:
    try:
        return check_device_name(name)
    except ValueError as exc:
        raise DuskError(f"--device {name!r}: {exc}") from exc


def resolve_dtype(name: str, device: str) -> str:
    """The weights' dtype name: `auto` = bfloat16 on CUDA, float32 on the CPU; anything else as given."""
    if name not in DTYPE_CHOICES:
        raise DuskError(f"--dtype {name!r}: expected one of {', '.join(DTYPE_CHOICES)}")
    if name == "auto":
        return "bfloat16" if device.startswith("cuda") else "float32"
    return name


def device_record(device: str, dtype: str) -> dict[str, str | None]:
    """What results files record about where a model ran: device, its name, dtype, torch and CUDA versions."""
    import torch

    name = torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else "cpu"
    return {
        "device": device,
        "device_name": name,
        "dtype": dtype,
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda,
    }

"""The merge stage: plan (every check first), then stream each output tensor through its method into the output.

dusk merge merge.yaml --out runs/merged
python -c "from dusk.merge import config, run; run.run(config.load_merge_config('m.yaml', 'out'))"
"""

import ctypes
import json
import logging
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from dusk.atomic import atomic_output_dir, check_output_dir, check_writable_parent
from dusk.cards import write_card
from dusk.errors import DuskError
from dusk.merge.config import MergeConfig
from dusk.merge.io import copy_tokenizer, read_rows, row_blocks, write_model
from dusk.merge.methods import Group
from dusk.merge.plan import MergePlan, TensorJob, plan_merge, tokenizer_dir
from dusk.models.safetensors_io import TORCH_DTYPES, TensorSpec, check_finite, check_output_not_input

log = logging.getLogger(__name__)


def _generator(cfg: MergeConfig, job: TensorJob) -> torch.Generator:
    """A generator seeded by (seed, tensor name): each tensor's draws are fixed whatever order tensors run in."""
    return torch.Generator().manual_seed(cfg.seed * 1_000_003 + zlib.crc32(job.spec.name.encode()))


def _copy_non_float(job: TensorJob, plan: MergePlan) -> torch.Tensor:
    tensors = [plan.models[model].tensors.read(name) for model, name in job.inputs]
    if any(not torch.equal(t, tensors[0]) for t in tensors[1:]):
        raise DuskError(f"non-floating tensor {job.spec.name} differs between inputs; it cannot be merged")
    return tensors[0]


def _read(plan: MergePlan, model: str, name: str, rows: tuple[int, int] | None) -> torch.Tensor:
    """One input tensor (or rows [start, end) of it) as stored."""
    source = plan.models[model]
    return source.tensors.read(name) if rows is None else read_rows(source, name, *rows)


def _loader(plan: MergePlan, model: str, name: str, rows: tuple[int, int] | None, dtype: torch.dtype):
    """Read one input tensor (or rows of it) when the method asks for it, cast to the compute dtype."""

    def load() -> torch.Tensor:
        return _read(plan, model, name, rows).to(dtype)

    return load


def _merge_block(job: TensorJob, plan: MergePlan, cfg: MergeConfig, rows: tuple[int, int] | None) -> torch.Tensor:
    """Run the method on the whole tensor (rows None) or on rows [start, end) of every input; refuse a result
    that is not finite where the inputs are."""
    inputs = [_loader(plan, model, name, rows, job.compute_dtype) for model, name in job.inputs]
    generator = _generator(cfg, job) if plan.method.random else None
    result = plan.method.fn(Group(inputs, job.base, job.spec.name, generator), **job.params)
    result = result.to(TORCH_DTYPES[job.spec.dtype])
    hint = f"check the parameters of merge method {plan.method.name} and the dtype {job.spec.dtype}"
    check_finite(job.spec.name, result, lambda: (_read(plan, m, n, rows) for m, n in job.inputs), hint)
    return result


def produce(job: TensorJob, plan: MergePlan, cfg: MergeConfig):
    """The bytes or tensor of one output tensor."""
    first = plan.models[job.inputs[0][0]].tensors.spec(job.inputs[0][1])
    if not TORCH_DTYPES[first.dtype].is_floating_point:
        return _copy_non_float(job, plan)
    if len(job.inputs) == 1 and plan.method.name == "passthrough" and job.params["scale"] == [None]:
        if first.dtype == job.spec.dtype:
            return plan.models[job.inputs[0][0]].tensors.read_bytes(job.inputs[0][1])  # bit-for-bit copy
    blocks = row_blocks(first) if plan.method.elementwise else [None]
    if len(blocks) == 1:
        return _merge_block(job, plan, cfg, None)
    out = torch.empty(job.spec.shape, dtype=TORCH_DTYPES[job.spec.dtype])
    for start, end in blocks:
        out[start:end] = _merge_block(job, plan, cfg, (start, end))
    return out


@contextmanager
def _single_threaded_ops() -> Iterator[None]:
    """Run torch ops on one thread: merges are memory-bound elementwise passes, where OpenMP's fork-join per op
    costs more than it gains (on a busy machine, 5x more); dusk parallelizes across task vectors instead."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def return_large_buffers_to_the_os() -> None:
    """Ask glibc to mmap every allocation of 1 MiB or more, so tensor-sized scratch is unmapped when freed
    instead of staying in its arenas (about 10% of the peak RSS of a TIES merge). Process-wide, so only the
    `dusk merge` command calls it, not `run` (which may share a process with other stages)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


def run(cfg: MergeConfig) -> Path:
    """Merge the models as `cfg` says and write the output model directory (atomically); return its path."""
    with _single_threaded_ops():
        return _run(cfg)


def _run(cfg: MergeConfig) -> Path:
    from tqdm import tqdm

    check_output_dir(cfg.out, cfg.force)
    check_writable_parent(cfg.out)
    plan = plan_merge(cfg)
    check_output_not_input(cfg.out, [model.directory for model in plan.models.values()])
    tokenizer_source = tokenizer_dir(cfg, plan)
    jobs = {job.spec.name: job for job in plan.jobs}
    specs = [job.spec for job in plan.jobs]

    def source(spec: TensorSpec):
        return produce(jobs[spec.name], plan, cfg)

    total = sum(spec.nbytes for spec in specs)
    with (
        atomic_output_dir(cfg.out, cfg.force) as tmp,
        tqdm(
            total=total, unit="B", unit_scale=True, desc=f"merge ({cfg.merge_method})", leave=False, disable=None
        ) as bar,
    ):
        write_model(tmp, specs, source, cfg.shard_size, on_tensor=lambda spec: bar.update(spec.nbytes))
        (tmp / "config.json").write_text(json.dumps(plan.config, indent=2, sort_keys=True) + "\n")
        copy_tokenizer(tokenizer_source, tmp)
        provenance = cfg.model_dump(mode="json", exclude={"out", "force"})
        provenance["layer_sources"] = plan.layer_sources
        (tmp / "dusk_merge.json").write_text(json.dumps(provenance, indent=2) + "\n")
        write_card(tmp, out_name=str(cfg.out))
    log.info("wrote %s (%s of %d model(s))", cfg.out, cfg.merge_method, len(plan.models))
    return cfg.out

"""Plan a merge before touching any weight: which input tensors make each output tensor, with which parameters.

It follows mergekit's planner: a `models:` merge is one slice over all layers (the base model is added as an
input when it is not listed); embeddings come from the first slice's sources, the final norm and lm head from
the last slice's; layer i of a slice of n layers sees t = i / (n - 1) (t = 1 for a one-layer slice, 0 outside
layers). Every check (architecture, tensor names and shapes, vocabulary, parameters) happens here, so a bad
config fails before the output directory is created.

    python -c "from dusk.merge.plan import plan_merge"
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dusk.errors import DuskError
from dusk.merge.config import MergeConfig, MergeSliceSource, OutputSlice, Parameters, evaluate_setting
from dusk.merge.io import TIED, check_same_architecture, output_config, shared_names, stand_in
from dusk.merge.methods import REQUIRED, MergeMethod, get_method
from dusk.models.io import torch_dtype
from dusk.models.safetensors_io import SAFETENSORS_DTYPES, TORCH_DTYPES, TensorSpec
from dusk.models.stacking import InputModel, check_layer_range, open_models, stacked_layers


@dataclass(frozen=True)
class TensorJob:
    """One output tensor: its spec, its inputs (model argument, tensor name) in order, the base, the parameters."""

    spec: TensorSpec
    inputs: tuple[tuple[str, str], ...]
    base: int | None
    params: dict[str, Any]
    compute_dtype: torch.dtype  # inputs are cast to this before the method runs


@dataclass(frozen=True)
class MergePlan:
    method: MergeMethod
    jobs: list[TensorJob]
    models: dict[str, InputModel]
    config: dict  # the output config.json
    layer_sources: list[tuple[str, int]]


def normalized_slices(cfg: MergeConfig, models: dict[str, InputModel]) -> list[OutputSlice]:
    """A `models:` merge as one slice over all layers, with the base appended when it is not an input."""
    if cfg.slices is not None:
        return cfg.slices
    assert cfg.models is not None
    entries = list(cfg.models)
    if cfg.base_model and all(entry.model != cfg.base_model for entry in entries):
        entries.append(type(entries[0])(model=cfg.base_model))
    sources = [
        MergeSliceSource(model=e.model, parameters=e.parameters, layer_range=(0, models[e.model].layout.num_layers))
        for e in entries
    ]
    return [OutputSlice(sources=sources)]


def _check_slice(item: OutputSlice, index: int, models: dict[str, InputModel], method: MergeMethod) -> int:
    lengths = set()
    for source in item.sources:
        start, end = source.layer_range
        where = f"slices[{index}] ({source.model}, layer_range [{start}, {end}))"
        check_layer_range(where, (start, end), models[source.model].layout.num_layers)
        lengths.add(end - start)
    if len(lengths) != 1:
        raise DuskError(f"slices[{index}]: all sources must span the same number of layers, got {sorted(lengths)}")
    names = [s.model for s in item.sources]
    if len(set(names)) != len(names):
        raise DuskError(f"slices[{index}]: a model appears twice among the sources ({names})")
    _check_count(method, "input model(s)", len(names), method.min_inputs, method.max_inputs, names)
    return lengths.pop()


def _check_count(method: MergeMethod, what: str, count: int, least: int, most: int | None, names: list[str]) -> None:
    if least <= count and (most is None or count <= most):
        return
    if least == most:
        limit = f"exactly {least}"
    else:
        limit = f"at least {least}" if count < least else f"at most {most}"
    raise DuskError(f"merge method {method.name} takes {limit} {what}, got {count} ({', '.join(names)})")


def _base_index(item: OutputSlice, cfg: MergeConfig, method: MergeMethod, index: int) -> int | None:
    """Where the base is among the slice's sources (None when the method ignores it or, optional, none is given);
    also checks the method's count of non-base models."""
    base = item.base_model or cfg.base_model
    names = [s.model for s in item.sources]
    if not method.uses_base:
        return None
    if base is None and method.needs_base:
        raise DuskError(
            f"merge method {method.name} needs a base_model (the model the others are compared with): "
            "base_model: in a config file, --base on the command line"
        )
    if base is not None and base not in names:
        raise DuskError(f"slices[{index}]: base_model {base} is not among the slice's sources ({', '.join(names)})")
    others = [name for name in names if name != base]
    _check_count(method, "non-base model(s)", len(others), method.min_non_base, method.max_non_base, others)
    return None if base is None else names.index(base)


def _resolve(
    scopes: list[Parameters | None], name: str, tensor: str, t: float, method: MergeMethod, model: str | None
) -> Any:
    param = method.param(name)
    for scope in scopes:
        if scope is not None and name in scope:
            value = evaluate_setting(tensor, scope[name], t, param.kind)
            if value is not None:
                return value
    if param.default is REQUIRED:
        whose = f"model {model}, " if model else ""
        raise DuskError(
            f"{whose}tensor {tensor}: merge method {method.name} needs parameter {name!r} "
            f"(set it per model under `parameters:` or globally)"
        )
    return param.default


def resolve_params(
    item: OutputSlice, cfg: MergeConfig, method: MergeMethod, names: tuple[str, list[str]], base: int | None, t: float
) -> dict[str, Any]:
    """Each parameter's value for one output tensor; per-model ones as lists over the models they apply to.

    `names` is (output tensor name, input tensor names): filters of shared parameters match the output name,
    those of per-model parameters the model's own tensor name, as in mergekit.
    """
    out_name, names = names
    shared_scopes = [item.parameters, cfg.parameters]
    params: dict[str, Any] = {}
    for param in method.params:
        if param.scope == "shared":
            params[param.name] = _resolve(shared_scopes, param.name, out_name, t, method, None)
            continue
        values = []
        for index, source in enumerate(item.sources):
            if param.scope == "non_base" and index == base:
                continue
            own = [s.parameters for s in item.sources if s.model == source.model]
            values.append(_resolve(own + shared_scopes, param.name, names[index], t, method, source.model))
        params[param.name] = values
    _check_params(params, method, out_name)
    return params


def _check_params(params: dict[str, Any], method: MergeMethod, tensor: str) -> None:
    for density in params.get("density", []):
        if not 0 < density <= 1:
            raise DuskError(f"tensor {tensor}: density {density} is outside (0, 1]")
    epsilons = params.get("epsilon")
    if isinstance(epsilons, list):  # DELLA: keep probabilities density +/- epsilon must be probabilities
        for density, epsilon in zip(params["density"], epsilons, strict=True):
            if density < 1 and (density + epsilon >= 1 or density - epsilon <= 0):
                raise DuskError(
                    f"tensor {tensor}: {method.name} density {density} with epsilon {epsilon}: density +/- epsilon "
                    "must lie in (0, 1) (choose a smaller epsilon)"
                )
    weights = params.get("weight")
    if weights and params.get("normalize") and abs(sum(weights)) < 1e-8:
        raise DuskError(
            f"tensor {tensor}: the weights {weights} sum to zero, so normalize (divide by their sum) is undefined; "
            "change the weights or set normalize: false"
        )


def _compute_dtype(specs: list[TensorSpec], cfg: MergeConfig) -> torch.dtype:
    if cfg.dtype and all(TORCH_DTYPES[s.dtype].is_floating_point for s in specs):
        return torch_dtype(cfg.dtype) if cfg.dtype != "float64" else torch.float64
    dtype = TORCH_DTYPES[specs[0].dtype]
    for spec in specs[1:]:
        dtype = torch.promote_types(dtype, TORCH_DTYPES[spec.dtype])
    return dtype


def _input_specs(inputs: list[tuple[str, str]], models: dict[str, InputModel], out_name: str) -> list[TensorSpec]:
    specs = []
    for model, name in inputs:
        if name not in models[model].tensors:
            raise DuskError(f"tensor {name} is missing from {model} (needed for output tensor {out_name})")
        specs.append(models[model].tensors.spec(name))
    for (model, name), spec in zip(inputs[1:], specs[1:], strict=True):
        if spec.shape != specs[0].shape:
            raise DuskError(
                f"tensor {name} has shape {list(spec.shape)} in {model} but {list(specs[0].shape)} in {inputs[0][0]}"
            )
    return specs


def _job(
    out_name: str,
    inputs: list[tuple[str, str]],
    item: OutputSlice,
    ctx: tuple[MergeConfig, MergeMethod, dict[str, InputModel]],
    base: int | None,
    t: float,
) -> TensorJob:
    cfg, method, models = ctx
    specs = _input_specs(inputs, models, out_name)
    # per-model filters match the model's own tensor name; a tied stand-in is matched as the tensor it stands for
    own_names = [out_name if name == TIED.get(out_name) else name for _m, name in inputs]
    params = resolve_params(item, cfg, method, (out_name, own_names), base, t)
    compute = _compute_dtype(specs, cfg)
    out_dtype = torch_dtype(cfg.out_dtype) if cfg.out_dtype and compute.is_floating_point else compute
    if cfg.out_dtype == "float64" and compute.is_floating_point:
        out_dtype = torch.float64
    spec = TensorSpec(out_name, SAFETENSORS_DTYPES[out_dtype], specs[0].shape)
    return TensorJob(spec, tuple(inputs), base, params, compute)


def _is_pre(name: str) -> bool:
    """Tensors before the layers (token and position embeddings); everything else outside layers comes after."""
    return "embed" in name or name.split(".")[-2:-1] in (["wte"], ["wpe"])


def _shared_jobs(item: OutputSlice, index: int, ctx: tuple, pre: bool) -> list[TensorJob]:
    cfg, method, models = ctx
    base = _base_index(item, cfg, method, index)
    return [
        _job(name, [(s.model, stand_in(models[s.model], name)) for s in item.sources], item, ctx, base, 0.0)
        for name in shared_names([models[s.model] for s in item.sources])
        if _is_pre(name) == pre
    ]


def plan_merge(cfg: MergeConfig) -> MergePlan:
    """Open the inputs, check them, and list every output tensor's job in write order."""
    method = get_method(cfg.merge_method)
    names = [e.model for e in cfg.models] if cfg.models else [s.model for i in cfg.slices or [] for s in i.sources]
    models = open_models(names + ([cfg.base_model] if cfg.base_model else []))
    check_same_architecture(models, cfg.tokenizer_source)
    slices = normalized_slices(cfg, models)
    ctx = (cfg, method, models)
    lengths = [_check_slice(item, index, models, method) for index, item in enumerate(slices)]
    jobs = _shared_jobs(slices[0], 0, ctx, pre=True)
    layer_sources = stacked_layers([(item.sources[0].model, item.sources[0].layer_range) for item in slices])
    out_layout = models[slices[0].sources[0].model].layout
    out_layer = -1
    for index, (item, length) in enumerate(zip(slices, lengths, strict=True)):
        base = _base_index(item, cfg, method, index)
        for offset in range(length):
            t = offset / (length - 1) if length > 1 else 1.0
            out_layer += 1
            for suffix in out_layout.suffixes:
                inputs = [
                    (s.model, models[s.model].layout.name(s.layer_range[0] + offset, suffix)) for s in item.sources
                ]
                jobs.append(_job(out_layout.name(out_layer, suffix), inputs, item, ctx, base, t))
    jobs += _shared_jobs(slices[-1], len(slices) - 1, ctx, pre=False)
    reference = models[cfg.base_model or slices[0].sources[0].model]
    untied = any(job.spec.name in TIED for job in jobs)
    config = output_config(
        reference.config, [models[m].config for m, _l in layer_sources], layer_sources, cfg, untied=untied
    )
    return MergePlan(method, jobs, models, config, layer_sources)


def tokenizer_dir(cfg: MergeConfig, plan: MergePlan) -> Path:
    """Whose tokenizer files go with the output: tokenizer_source (base or a model), else the base, else the first."""
    source = cfg.tokenizer_source
    if source in (None, "base", "union"):
        source = cfg.base_model or next(iter(plan.models))
    if source not in plan.models:
        raise DuskError(
            f"tokenizer_source {source!r}: expected 'base' or one of the merged models ({', '.join(plan.models)})"
        )
    return plan.models[source].directory

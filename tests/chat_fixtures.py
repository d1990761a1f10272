"""Chat-template fixtures: the tiny Llama with room for long prompts (its tokenizer has a ChatML template), copies
of it without a template and with one that refuses the system role, and lm-eval 0.4.13 run with the chat flags."""

import json
import shutil
from pathlib import Path

import pytest
from lm_eval_yaml import write_lm_eval_tasks

from dusk.eval.chat import ChatFormat
from dusk.models.tiny import build_tiny_model

# Gemma's rule, in a ChatML template: a system turn is an error (lm-eval then drops the system message)
NO_SYSTEM_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def set_chat_template(model_dir: Path, template: str | None) -> Path:
    """Give the model directory's tokenizer `template` (None: no chat template at all)."""
    (model_dir / "chat_template.jinja").unlink(missing_ok=True)
    config_path = model_dir / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config.pop("chat_template", None)
    if template is not None:
        (model_dir / "chat_template.jinja").write_text(template)
    config_path.write_text(json.dumps(config, indent=2))
    return model_dir


@pytest.fixture(scope="module")
def chat_tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Llama (ChatML template) with room for 25-shot ARC prompts rendered as turns."""
    model_dir = build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-chat", "llama", num_layers=2, seed=0)
    config = json.loads((model_dir / "config.json").read_text())
    config["max_position_embeddings"] = 16384
    (model_dir / "config.json").write_text(json.dumps(config))
    return model_dir


@pytest.fixture(scope="module")
def no_system_tiny(chat_tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same model with a template that raises on a system turn."""
    copy = shutil.copytree(chat_tiny, tmp_path_factory.mktemp("models") / "tiny-no-system")
    return set_chat_template(Path(copy), NO_SYSTEM_TEMPLATE)


@pytest.fixture(scope="module")
def lm_eval_tasks(tmp_path_factory: pytest.TempPathFactory) -> "LmEvalTasks":
    """lm-eval task YAMLs for every task the chat tests score, indexed once (a TaskManager takes ~30 s to build)."""
    from eval_task_fixtures import real_data_dir
    from lm_eval.tasks import TaskManager

    yaml_dir = tmp_path_factory.mktemp("lm-eval-yaml")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DUSK_DATA_DIR", str(real_data_dir()))
        names = write_lm_eval_tasks(yaml_dir, CHAT_TASKS)
    return LmEvalTasks(names, TaskManager(include_path=str(yaml_dir)))


CHAT_TASKS = ["arc_challenge", "hellaswag", "mmlu_anatomy", "truthfulqa_mc2", "winogrande", "gsm8k"]


class LmEvalTasks:
    """dusk task name -> lm-eval task name, and the TaskManager that knows them."""

    def __init__(self, names: dict[str, str], manager) -> None:
        self.names, self.manager = names, manager


def run_lm_eval_chat(
    model, tokenizer, tasks: list[str], limit: int, known: LmEvalTasks, max_gen_toks: int, batch: int, chat: ChatFormat
) -> dict:
    """lm-eval's per-task samples with the chat settings (simple_evaluate with HFLM on the model object)."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch)
    out = simple_evaluate(
        model=lm,
        tasks=[known.names[name] for name in tasks],
        task_manager=known.manager,
        limit=limit,
        log_samples=True,
        gen_kwargs=f"max_gen_toks={max_gen_toks}",
        apply_chat_template=chat.apply_chat_template,
        fewshot_as_multiturn=chat.fewshot_as_multiturn,
        system_instruction=chat.system_instruction,
    )
    samples = {}
    for name in tasks:
        rows = [s for s in out["samples"][known.names[name]] if s.get("filter") in (None, "none", "strict-match")]
        samples[name] = {s["doc_id"]: s for s in rows}
    return samples

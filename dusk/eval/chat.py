"""Prompts through a model's chat template, as lm-evaluation-harness 0.4.13 renders them (`--apply_chat_template`,
`--fewshot_as_multiturn`, `--system_instruction`), so dusk scores the same strings.

Rules taken from `lm_eval/api/task.py` (`fewshot_context`, `build_qa_turn`, `multiple_input_context`,
`construct_requests`), `lm_eval/api/utils.py` (`Message`, `maybe_delimit`, `multiturn_to_singleturn`) and
`lm_eval/models/huggingface.py` (`apply_chat_template`):
- the system message is the system instruction and the task's description joined by the few-shot delimiter
  (`maybe_delimit`: the delimiter only when neither side has whitespace at the join); none when both are empty;
- each shot is a user turn (its question) and an assistant turn (its answer); the scored item is a last user turn;
- multiturn: those turns as they are; single turn: everything after the system message joined as plain text (question,
  target delimiter, answer, few-shot delimiter, ..., the item's question) into one user message;
- rendered with `add_generation_prompt=True` (no task here has a `gen_prefix`); a template that refuses the system
  role is retried without the system message (the description goes with it, as in lm-eval);
- under a chat template the continuation has no target delimiter (` B` becomes `B`): the assistant turn's header
  ends the context; Winogrande renders one conversation per option;
- without a chat template, a system instruction is plain text before the description and shots, with no delimiter
  after it unless a description follows (lm-eval's plain rendering of the system message).

    python -c "from dusk.eval.chat import *; print(single_turn([Message('user', 'Q1', ' '), \
Message('assistant', 'A1', '\\n\\n'), Message('user', 'Q2')]))"
"""

from collections.abc import Callable
from dataclasses import dataclass

from dusk.errors import DuskError
from dusk.eval.requests import GenerationRequest, LoglikelihoodRequest
from dusk.eval.tasks.base import FEWSHOT_DELIMITER, TARGET_DELIMITER, Mode, Task

Chat = list[dict[str, str]]


@dataclass(frozen=True)
class ChatFormat:
    """How prompts are rendered: plain text (lm-eval's default) or through the tokenizer's chat template."""

    apply_chat_template: bool = False  # render through the tokenizer's chat template
    fewshot_as_multiturn: bool = False  # shots as user/assistant turns (else one user message)
    system_instruction: str | None = None  # a system message before the task's description

    @property
    def plain(self) -> bool:
        """True when prompts are exactly the plain-text ones (no template, no system instruction)."""
        return not self.apply_chat_template and self.system_instruction is None

    def record(self) -> dict:
        """The settings as results.json records them."""
        return {
            "apply_chat_template": self.apply_chat_template,
            "fewshot_as_multiturn": self.fewshot_as_multiturn,
            "system_instruction": self.system_instruction,
        }


@dataclass
class Message:
    """One turn: its role, its text, and what follows it when the turns are joined as plain text."""

    role: str  # system, user or assistant
    content: str
    delimiter: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}

    def text(self) -> str:
        return self.content + self.delimiter


def maybe_delimit(prefix: str | None, suffix: str | None, delimiter: str) -> str:
    """`prefix` and `suffix` joined, with `delimiter` only when neither has whitespace at the join."""
    if not prefix:
        return suffix or ""
    if not suffix:
        return prefix
    return prefix + suffix if prefix[-1].isspace() or suffix[0].isspace() else prefix + delimiter + suffix


def qa_turn(question: str, answer: str | None = None) -> list[Message]:
    """A solved example (user then assistant turn) or, with no answer, the scored item's user turn."""
    if answer is None:
        return [Message("user", question)]
    return [Message("user", question, TARGET_DELIMITER), Message("assistant", answer, FEWSHOT_DELIMITER)]


def conversation_head(task: Task, shots: list[dict], system_instruction: str | None) -> list[Message]:
    """The system message (instruction and description) and the solved examples: every turn before the item's."""
    system = maybe_delimit(system_instruction, task.description, FEWSHOT_DELIMITER)
    messages = [Message("system", system)] if system else []
    for shot in shots:
        answer = task.target(shot)
        # lm-eval's answer is a choice index for choice tasks (always an answer), else text (none when empty)
        messages += qa_turn(task.text(shot), answer if answer or task.output == "choice" else None)
    return messages


def single_turn(messages: list[Message]) -> Chat:
    """The turns after the system message collapsed into one user message (lm-eval's `multiturn_to_singleturn`)."""
    system, rest = (messages[0], messages[1:]) if messages[0].role == "system" else (None, messages)
    text = "".join(m.text() for m in rest[:-1]) + rest[-1].content  # the item's own delimiter is dropped
    chat = [{"role": "user", "content": text}]
    return [system.as_dict(), *chat] if system else chat


def template_renderer(tokenizer) -> Callable[[Chat], str]:
    """The tokenizer's chat template with a generation prompt; a template that refuses the system role (raises a
    template error) is applied again without the system message, as lm-eval's HFLM.apply_chat_template does."""
    import jinja2

    def render(chat: Chat) -> str:
        kwargs = {"tokenize": False, "add_generation_prompt": True, "continue_final_message": False}
        try:
            return tokenizer.apply_chat_template(chat, **kwargs)
        except jinja2.exceptions.TemplateError:
            return tokenizer.apply_chat_template([m for m in chat if m["role"] != "system"], **kwargs)

    return render


def check_chat_template(tokenizer, model: str) -> None:
    """Refuse --apply-chat-template on a model whose tokenizer has no chat template."""
    if not getattr(tokenizer, "chat_template", None):
        raise DuskError(
            f"--apply-chat-template: {model}'s tokenizer has no chat template (no chat_template in "
            "tokenizer_config.json, no chat_template.jinja); evaluate it without the flag, or use a chat model"
        )


class ChatPrompts:
    """Builds an item's requests in a ChatFormat (the non-plain formats; plain prompts stay in tasks/base.py)."""

    def __init__(self, chat: ChatFormat, tokenizer=None) -> None:
        if chat.apply_chat_template and tokenizer is None:
            raise DuskError("a chat template needs the model's tokenizer")
        self.format = chat
        self.template = template_renderer(tokenizer) if chat.apply_chat_template else None

    @property
    def plain(self) -> bool:
        return self.format.plain

    @property
    def target_delimiter(self) -> str:
        return "" if self.format.apply_chat_template else TARGET_DELIMITER

    def render(self, messages: list[Message]) -> str:
        if self.template is None:
            return "".join(m.text() for m in messages)
        turns = [m.as_dict() for m in messages] if self.format.fewshot_as_multiturn else single_turn(messages)
        return self.template(turns)

    def loglikelihood_requests(self, task: Task, doc: dict, shots: list[dict]) -> list[LoglikelihoodRequest]:
        """One (context, continuation) pair per choice; Winogrande: one rendered conversation per option."""
        head = conversation_head(task, shots, self.format.system_instruction)
        if task.output == "partial":
            continuation = self.target_delimiter + task.target(doc)
            return [LoglikelihoodRequest(self.render(head + qa_turn(c)), continuation) for c in task.choices(doc)]
        context = self.render(head + qa_turn(task.text(doc)))
        return [LoglikelihoodRequest(context, self.target_delimiter + choice) for choice in task.choices(doc)]

    def generation_request(
        self, task: Task, doc: dict, shots: list[dict], mode: Mode, max_new_tokens: int
    ) -> GenerationRequest:
        head = conversation_head(task, shots, self.format.system_instruction)
        return GenerationRequest(self.render(head + qa_turn(task.text(doc))), task.stop[mode], max_new_tokens)

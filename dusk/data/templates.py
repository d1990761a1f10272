"""Prompt templates: normalized records -> (prompt, response) strings, so SFT puts the loss on response tokens only.

Templates (the `template` argument):

- `alpaca` (default; alias `solar`): the Alpaca-style format of SOLAR's instruct models. Exact text:

      ### System:\\n{system}\\n\\n          (only when the record has a system message)
      ### User:\\n{turn}\\n\\n### Assistant:\\n{answer}\\n\\n   (once per earlier turn pair of `history`)
      ### User:\\n{prompt}\\n\\n### Assistant:\\n            <- end of the prompt string
      {response}                                          <- the response string (no EOS; the trainer appends it)

  An Alpaca `input` is already inside `prompt` (instruction, blank line, input; see formats.join_instruction).
- `stanford_alpaca`: the original Stanford Alpaca text ("Below is an instruction ... ### Instruction: ... ###
  Response:\\n"); a system message replaces its opening sentence; history is not supported.
- `chat`: the model's own chat template through `tokenizer.apply_chat_template`; the prompt is the conversation
  with `add_generation_prompt=True`, the response is what the full conversation adds after it (the answer and the
  template's end-of-turn marker).

    python -c "from dusk.data.templates import render; print(render({'prompt': 'Hi', 'response': 'Hello'}))"
"""

from dusk.errors import DuskError

TEMPLATES = ("alpaca", "solar", "stanford_alpaca", "chat")
STANFORD_INTRO = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request."
)


def check_template(template: str, has_tokenizer: bool) -> None:
    """Refuse, before any rendering, an unknown template, or `chat` without a tokenizer to render it."""
    if template not in TEMPLATES:
        raise DuskError(f"unknown template {template!r}; known: {', '.join(TEMPLATES)}")
    if template == "chat" and not has_tokenizer:
        raise DuskError("template 'chat' needs --tokenizer MODEL (the model whose chat template renders the records)")


def solar_prompt(prompt: str, system: str = "", history: list[dict] | None = None) -> str:
    """The prompt string of the `alpaca`/`solar` template (ends with `### Assistant:\\n`)."""
    parts = [f"### System:\n{system}\n\n"] if system else []
    for turn in history or []:
        header = "### User:\n" if turn["role"] == "user" else "### Assistant:\n"
        parts.append(f"{header}{turn['content']}\n\n")
    parts.append(f"### User:\n{prompt}\n\n### Assistant:\n")
    return "".join(parts)


def stanford_prompt(prompt: str, system: str = "") -> str:
    """The prompt string of the original Stanford Alpaca template (instruction and input already joined)."""
    return f"{system or STANFORD_INTRO}\n\n### Instruction:\n{prompt}\n\n### Response:\n"


def _messages(record: dict) -> list[dict]:
    messages = [{"role": "system", "content": record["system"]}] if record.get("system") else []
    messages.extend({"role": turn["role"], "content": turn["content"]} for turn in record.get("history") or [])
    messages.append({"role": "user", "content": record["prompt"]})
    return messages


def _chat_text(tokenizer, messages: list[dict], generation_prompt: bool) -> str:
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        raise DuskError("template 'chat' needs a tokenizer with a chat template; use template 'alpaca' otherwise")
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)


def _chat_pair(record: dict, answers: list[str], tokenizer) -> tuple[str, list[str]]:
    messages = _messages(record)
    prompt = _chat_text(tokenizer, messages, True)
    rendered = []
    for answer in answers:
        full = _chat_text(tokenizer, [*messages, {"role": "assistant", "content": answer}], False)
        if not full.startswith(prompt):
            raise DuskError(
                "the tokenizer's chat template does not render the conversation as prompt + answer "
                "(its generation prompt is not a prefix of the full text); use template 'alpaca'"
            )
        rendered.append(full[len(prompt) :])
    return prompt, rendered


def _prompt(record: dict, template: str) -> str:
    if template in ("alpaca", "solar"):
        return solar_prompt(record["prompt"], record.get("system", ""), record.get("history"))
    if template == "stanford_alpaca":
        if record.get("history"):
            raise DuskError("template 'stanford_alpaca' has no multi-turn form; use 'alpaca' or 'chat'")
        return stanford_prompt(record["prompt"], record.get("system", ""))
    raise DuskError(f"unknown template {template!r}; known: {', '.join(TEMPLATES)}")


def _check(record: dict, fields: tuple[str, ...]) -> None:
    missing = [field for field in fields if not isinstance(record.get(field), str)]
    if missing:
        raise DuskError(f"cannot render record: missing field(s) {', '.join(missing)} (is it the right kind?)")


def render(record: dict, template: str = "alpaca", tokenizer=None) -> tuple[str, str]:
    """(prompt, response) of an instruction record; prompt + response is the full training text."""
    _check(record, ("prompt", "response"))
    if template == "chat":
        prompt, (response,) = _chat_pair(record, [record["response"]], tokenizer)
        return prompt, response
    return _prompt(record, template), record["response"]


def render_preference(record: dict, template: str = "alpaca", tokenizer=None) -> tuple[str, str, str]:
    """(prompt, chosen, rejected) of a preference record, each answer rendered as `render` renders a response."""
    _check(record, ("prompt", "chosen", "rejected"))
    if template == "chat":
        prompt, (chosen, rejected) = _chat_pair(record, [record["chosen"], record["rejected"]], tokenizer)
        return prompt, chosen, rejected
    return _prompt(record, template), record["chosen"], record["rejected"]


def render_text(record: dict, template: str = "alpaca", tokenizer=None) -> str:
    """One string for any record kind (text as is; instruction as prompt + response; preference with `chosen`)."""
    if "text" in record:
        return record["text"]
    if "chosen" in record:
        return "".join(render_preference(record, template, tokenizer)[:2])
    return "".join(render(record, template, tokenizer))

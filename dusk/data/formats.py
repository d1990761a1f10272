"""Record kinds and converters: every supported raw layout becomes one of three normalized record shapes.

- text:        {"text"}
- instruction: {"prompt", "response", "system"?, "history"?}
- preference:  {"prompt", "chosen", "rejected", "system"?, "history"?}

`prompt` is the last user turn (for Alpaca: the instruction, then a blank line and the input when there is one);
`history` is the list of earlier turns `[{"role": "user"|"assistant", "content"}]` of a multi-turn dialogue.

    python -c "from dusk.data.formats import convert; print(convert('alpaca', {'instruction': 'Hi', 'output': 'Yo'}))"
"""

from collections.abc import Callable

from dusk.errors import DuskError

KINDS = ("text", "instruction", "preference")
ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "system": "system",
    "bot": "assistant",
    "model": "assistant",
}


class RecordError(ValueError):
    """A record that cannot be converted; the caller adds where it is (file and line)."""


def _text(record: dict, field: str, required: bool = True) -> str:
    value = record.get(field)
    if value is None:
        if required:
            raise RecordError(f"missing required field {field!r}")
        return ""
    if not isinstance(value, str):
        raise RecordError(f"field {field!r} must be a string, got {type(value).__name__}")
    return value


def _nonempty(value: str, field: str) -> str:
    if not value.strip():
        raise RecordError(f"field {field!r} is empty")
    return value


def _first(record: dict, *fields: str) -> str:
    """The first of `fields` present in the record (aliases such as Dolly's `context`/`input`)."""
    for field in fields:
        if field in record:
            return field
    raise RecordError(
        f"missing required field {fields[0]!r}" + (f" (or {', '.join(fields[1:])})" if fields[1:] else "")
    )


def _with_system(record: dict, out: dict, system: str = "") -> dict:
    system = system or (record.get("system") if isinstance(record.get("system"), str) else "") or ""
    if system.strip():
        out["system"] = system
    return out


def from_text(record: dict) -> dict:
    """Pretraining text: `{"text"}` (plain text files and JSONL text are read into this shape)."""
    return {"text": _nonempty(_text(record, "text"), "text")}


def join_instruction(instruction: str, extra: str) -> str:
    """Alpaca's instruction and input as one prompt: the instruction, a blank line, the input (when non-empty)."""
    return f"{instruction}\n\n{extra}" if extra.strip() else instruction


def from_alpaca(record: dict) -> dict:
    """Alpaca `instruction`/`input`/`output`; also Dolly (`context`, `response`) and Intel/orca (`question`)."""
    instruction = _nonempty(_text(record, _first(record, "instruction", "question")), "instruction")
    extra = _text(record, "input" if "input" in record else "context", required=False)
    response = _nonempty(_text(record, _first(record, "output", "response")), "output")
    return _with_system(record, {"prompt": join_instruction(instruction, extra), "response": response})


def flan_cot_response(answer: str, chain_of_thought: str) -> str:
    """FLAN CoT's target: the rationale, then `So the answer is {answer}.` on its own line."""
    return f"{chain_of_thought.strip()}\nSo the answer is {answer.strip()}."


def from_flan_cot(record: dict) -> dict:
    """FLAN CoT TSV row (question, answer, chain_of_thought) -> prompt = question, response = rationale + answer."""
    question = _nonempty(_text(record, "question"), "question")
    answer = _nonempty(_text(record, "answer"), "answer")
    return {"prompt": question, "response": flan_cot_response(answer, _text(record, "chain_of_thought"))}


def from_gsm8k(record: dict) -> dict:
    """GSM8K `question`/`answer` (the answer keeps its worked solution and final `#### N` line)."""
    return {
        "prompt": _nonempty(_text(record, "question"), "question"),
        "response": _nonempty(_text(record, "answer"), "answer"),
    }


def _message(item: object, index: int) -> dict:
    if not isinstance(item, dict):
        raise RecordError(f"message {index} must be an object with role/content (or from/value)")
    role = item.get("role", item.get("from"))
    content = item.get("content", item.get("value"))
    if role not in ROLES or not isinstance(content, str):
        raise RecordError(f"message {index} needs a role in {sorted(ROLES)} and a string content")
    return {"role": ROLES[role], "content": content}


def to_messages(items: object, field: str) -> list[dict]:
    """OpenAI (`role`/`content`) or ShareGPT (`from`/`value`) turns as `[{"role", "content"}]`."""
    if not isinstance(items, list) or not items:
        raise RecordError(f"field {field!r} must be a non-empty list of messages")
    return [_message(item, index) for index, item in enumerate(items)]


def split_dialogue(messages: list[dict]) -> dict:
    """system / history / prompt from a dialogue that ends with a user turn."""
    system = ""
    if messages and messages[0]["role"] == "system":
        system, messages = messages[0]["content"], messages[1:]
    if not messages or messages[-1]["role"] != "user":
        raise RecordError("the conversation must end with a user turn before the response")
    out = {"prompt": _nonempty(messages[-1]["content"], "prompt")}
    if messages[:-1]:
        out["history"] = messages[:-1]
    return _with_system({}, out, system)


def from_messages(record: dict) -> dict:
    """Chat data: `messages` (OpenAI) or `conversations` (ShareGPT); the last assistant turn is the response."""
    field = _first(record, "messages", "conversations")
    messages = to_messages(record[field], field)
    if messages[-1]["role"] != "assistant":
        raise RecordError(f"the last message of {field!r} must be the assistant's response")
    out = split_dialogue(messages[:-1])
    out["response"] = _nonempty(messages[-1]["content"], "response")
    return {"prompt": out.pop("prompt"), "response": out.pop("response"), **out}


def _response(value: object, field: str) -> str:
    """A preference answer: a string, a `{from, value}` turn, or a message list ending with the assistant's turn."""
    if isinstance(value, str):
        return _nonempty(value, field)
    if isinstance(value, dict):
        return _nonempty(_message(value, 0)["content"], field)
    if isinstance(value, list) and value:
        return _nonempty(to_messages(value, field)[-1]["content"], field)
    raise RecordError(f"missing required field {field!r}" if value is None else f"field {field!r} has no answer text")


def _pair(record: dict, chosen: str, rejected: str) -> dict:
    return {"chosen": _response(record.get(chosen), chosen), "rejected": _response(record.get(rejected), rejected)}


def from_preference(record: dict) -> dict:
    """`prompt`/`chosen`/`rejected` strings (UltraFeedback, Intel/orca's `question`); TRL message lists too."""
    if "prompt" not in record and "question" not in record and isinstance(record.get("chosen"), list):
        dialogue = split_dialogue(to_messages(record["chosen"], "chosen")[:-1])
        return {**{"prompt": dialogue.pop("prompt")}, **_pair(record, "chosen", "rejected"), **dialogue}
    prompt = record[_first(record, "prompt", "question")]
    if isinstance(prompt, list):
        dialogue = split_dialogue(to_messages(prompt, "prompt"))
        return {"prompt": dialogue.pop("prompt"), **_pair(record, "chosen", "rejected"), **dialogue}
    prompt = _nonempty(_text(record, _first(record, "prompt", "question")), "prompt")
    return _with_system(record, {"prompt": prompt, **_pair(record, "chosen", "rejected")})


def from_openai_preference(record: dict) -> dict:
    """OpenAI/Azure DPO: `input.messages`, `preferred_output`, `non_preferred_output` (orca_dpo_pairs here)."""
    source = record.get("input")
    if not isinstance(source, dict) or "messages" not in source:
        raise RecordError("missing required field 'input.messages'")
    dialogue = split_dialogue(to_messages(source["messages"], "input.messages"))
    pair = _pair(record, "preferred_output", "non_preferred_output")
    return {"prompt": dialogue.pop("prompt"), "chosen": pair["chosen"], "rejected": pair["rejected"], **dialogue}


def parse_hh_dialogue(text: str) -> list[dict]:
    """Anthropic's `\\n\\nHuman: ...\\n\\nAssistant: ...` text as turns."""
    turns: list[dict] = []
    for chunk in ("\n\n" + text.lstrip("\n")).split("\n\nHuman:")[1:]:
        human, *answers = chunk.split("\n\nAssistant:")
        turns.append({"role": "user", "content": human.strip()})
        turns.extend({"role": "assistant", "content": answer.strip()} for answer in answers)
    if not turns:
        raise RecordError("expected an Anthropic dialogue with '\\n\\nHuman:' turns")
    return turns


def from_hh_rlhf(record: dict) -> dict:
    """HH-RLHF whole dialogues: split at the last "\\n\\nAssistant:" into a shared prompt and two responses."""
    chosen, rejected = _text(record, "chosen"), _text(record, "rejected")
    cut_c, cut_r = chosen.rfind("\n\nAssistant:"), rejected.rfind("\n\nAssistant:")
    if cut_c < 0 or cut_r < 0:
        raise RecordError("chosen and rejected must each contain a final '\\n\\nAssistant:' turn")
    if chosen[:cut_c] != rejected[:cut_r]:
        raise RecordError("chosen and rejected dialogues differ before their last Assistant turn")
    dialogue = split_dialogue(parse_hh_dialogue(chosen[:cut_c]))
    answer_c = _nonempty(chosen[cut_c + len("\n\nAssistant:") :].strip(), "chosen")
    answer_r = _nonempty(rejected[cut_r + len("\n\nAssistant:") :].strip(), "rejected")
    return {"prompt": dialogue.pop("prompt"), "chosen": answer_c, "rejected": answer_r, **dialogue}


def from_hh_split(record: dict) -> dict:
    """HH-RLHF already split (`prompt` = the dialogue before the last Assistant turn, starting with `Human:`)."""
    dialogue = split_dialogue(parse_hh_dialogue(_nonempty(_text(record, "prompt"), "prompt")))
    pair = _pair(record, "chosen", "rejected")
    return {
        "prompt": dialogue.pop("prompt"),
        "chosen": pair["chosen"].strip(),
        "rejected": pair["rejected"].strip(),
        **dialogue,
    }


def from_llamafactory_preference(record: dict) -> dict:
    """LLaMA-Factory DPO: `conversations` (ShareGPT turns ending with a human turn), `chosen`/`rejected` turns."""
    dialogue = split_dialogue(to_messages(record.get("conversations"), "conversations"))
    return {"prompt": dialogue.pop("prompt"), **_pair(record, "chosen", "rejected"), **dialogue}


def from_normalized_instruction(record: dict) -> dict:
    """An already normalized instruction record (a `dusk data mix` output); provenance is kept."""
    out = {
        "prompt": _nonempty(_text(record, "prompt"), "prompt"),
        "response": _nonempty(_text(record, "response"), "response"),
    }
    return _carry(record, _with_system(record, out))


def _carry(record: dict, out: dict) -> dict:
    for field in ("history", "provenance"):
        if field in record:
            out[field] = record[field]
    return out


CONVERTERS: dict[str, tuple[str, Callable[[dict], dict]]] = {
    "text": ("text", from_text),
    "alpaca": ("instruction", from_alpaca),
    "dolly": ("instruction", from_alpaca),
    "flan_cot": ("instruction", from_flan_cot),
    "gsm8k": ("instruction", from_gsm8k),
    "messages": ("instruction", from_messages),
    "instruction": ("instruction", from_normalized_instruction),
    "preference": ("preference", lambda record: _carry(record, from_preference(record))),
    "openai_preference": ("preference", from_openai_preference),
    "hh_rlhf": ("preference", from_hh_rlhf),
    "hh_split": ("preference", from_hh_split),
    "llamafactory_preference": ("preference", from_llamafactory_preference),
}


def detect_format(record: dict) -> str:
    """The converter name for a record, from its fields."""
    keys = set(record)
    if "preferred_output" in keys:
        return "openai_preference"
    if {"chosen", "rejected"} <= keys:
        if "conversations" in keys:
            return "llamafactory_preference"
        if "prompt" in keys and isinstance(record["prompt"], str) and record["prompt"].startswith("Human:"):
            return "hh_split"
        return "preference" if keys & {"prompt", "question"} or isinstance(record["chosen"], list) else "hh_rlhf"
    rules = [
        ({"messages"}, "messages"),
        ({"conversations"}, "messages"),
        ({"instruction"}, "alpaca"),
        ({"chain_of_thought"}, "flan_cot"),
        ({"prompt", "response"}, "instruction"),
        ({"question", "answer"}, "gsm8k"),
        ({"text"}, "text"),
    ]
    for needed, name in rules:
        if needed <= keys:
            return name
    raise RecordError(
        f"cannot tell the record's format from its fields {sorted(keys)}; expected text, "
        "instruction/output, question/answer, messages, prompt/chosen/rejected, ..."
    )


def convert(format_name: str, record: dict) -> dict:
    """Convert one raw record with the named converter (see CONVERTERS)."""
    if format_name not in CONVERTERS:
        raise DuskError(f"unknown record format {format_name!r}; known: {', '.join(CONVERTERS)}")
    return CONVERTERS[format_name][1](record)


def kind_of(format_name: str) -> str:
    """The record kind (text, instruction, preference) a converter produces."""
    return CONVERTERS[format_name][0]


def preference_to_instruction(record: dict) -> dict:
    """SFT on a preference set: the prompt with its chosen answer."""
    out = {key: value for key, value in record.items() if key not in ("chosen", "rejected")}
    return {**out, "response": record["chosen"]}

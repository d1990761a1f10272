"""MMLU: 57 subject tasks (`mmlu_<subject>`), 5-shot = the first 5 dev items in order, ` A`..` D`, acc.

python -c "from dusk.eval.tasks.mmlu import TASKS; print(len(TASKS), TASKS[0].description)"
"""

from dusk.eval.tasks.base import Task

SUBJECTS = (
    "abstract_algebra", "anatomy", "astronomy", "business_ethics", "clinical_knowledge", "college_biology",
    "college_chemistry", "college_computer_science", "college_mathematics", "college_medicine", "college_physics",
    "computer_security", "conceptual_physics", "econometrics", "electrical_engineering", "elementary_mathematics",
    "formal_logic", "global_facts", "high_school_biology", "high_school_chemistry", "high_school_computer_science",
    "high_school_european_history", "high_school_geography", "high_school_government_and_politics",
    "high_school_macroeconomics", "high_school_mathematics", "high_school_microeconomics", "high_school_physics",
    "high_school_psychology", "high_school_statistics", "high_school_us_history", "high_school_world_history",
    "human_aging", "human_sexuality", "international_law", "jurisprudence", "logical_fallacies", "machine_learning",
    "management", "marketing", "medical_genetics", "miscellaneous", "moral_disputes", "moral_scenarios", "nutrition",
    "philosophy", "prehistory", "professional_accounting", "professional_law", "professional_medicine",
    "professional_psychology", "public_relations", "security_studies", "sociology", "us_foreign_policy", "virology",
    "world_religions",
)  # fmt: skip
# Each subject's category, as lm-eval 0.4.x groups them (mmlu = mmlu_stem, mmlu_other, mmlu_social_sciences,
# mmlu_humanities): harness mode pools MMLU's stderr within each category first, then over the four.
CATEGORIES = {
    "stem": (
        "abstract_algebra", "anatomy", "astronomy", "college_biology", "college_chemistry",
        "college_computer_science", "college_mathematics", "college_physics", "computer_security",
        "conceptual_physics", "electrical_engineering", "elementary_mathematics", "high_school_biology",
        "high_school_chemistry", "high_school_computer_science", "high_school_mathematics", "high_school_physics",
        "high_school_statistics", "machine_learning",
    ),
    "other": (
        "business_ethics", "clinical_knowledge", "college_medicine", "global_facts", "human_aging", "management",
        "marketing", "medical_genetics", "miscellaneous", "nutrition", "professional_accounting",
        "professional_medicine", "virology",
    ),
    "social_sciences": (
        "econometrics", "high_school_geography", "high_school_government_and_politics",
        "high_school_macroeconomics", "high_school_microeconomics", "high_school_psychology", "human_sexuality",
        "professional_psychology", "public_relations", "security_studies", "sociology", "us_foreign_policy",
    ),
    "humanities": (
        "formal_logic", "high_school_european_history", "high_school_us_history", "high_school_world_history",
        "international_law", "jurisprudence", "logical_fallacies", "moral_disputes", "moral_scenarios",
        "philosophy", "prehistory", "professional_law", "world_religions",
    ),
}  # fmt: skip
CATEGORY_OF = {subject: category for category, subjects in CATEGORIES.items() for subject in subjects}
LETTERS = ("A", "B", "C", "D")
DESCRIPTION = "The following are multiple choice questions (with answers) about"


def _text(doc: dict) -> str:
    options = "".join(f"{letter}. {choice}\n" for letter, choice in zip(LETTERS, doc["choices"], strict=True))
    return f"{doc['question'].strip()}\n{options}Answer:"


def subject_task(subject: str) -> Task:
    return Task(
        name=f"mmlu_{subject}",
        dataset=f"mmlu_{subject}",
        split="test",
        fewshot_split="dev",
        num_fewshot=5,
        sampler="first_n",
        output="choice",
        text=_text,
        choices=lambda doc: list(LETTERS),
        gold=lambda doc: doc["answer"],
        target=lambda doc: LETTERS[doc["answer"]],
        metrics=("acc",),
        description=f"{DESCRIPTION} {subject.replace('_', ' ')}.\n\n",
        group="mmlu",
    )


TASKS = tuple(subject_task(subject) for subject in SUBJECTS)

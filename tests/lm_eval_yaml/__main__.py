"""`python -m lm_eval_yaml OUT_DIR TASK [TASK ...]` (from tests/): write lm-eval task YAMLs for these H6 tasks."""

import sys

from lm_eval_yaml import write_lm_eval_tasks

if len(sys.argv) < 3:
    sys.exit("usage: python -m lm_eval_yaml OUT_DIR TASK [TASK ...]  (tasks: arc_challenge, gsm8k, ...)")
for task, name in write_lm_eval_tasks(sys.argv[1], sys.argv[2:]).items():
    print(f"{task}: {name}")

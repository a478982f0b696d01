"""RPC-Bench: question answering on CS papers, built from review–rebuttal exchanges.

Answers are judged by an LLM on correctness (precision against the reference), completeness
(recall) and conciseness, each rated 0.00–5.00; `Claim_Verification` items (True/False) are
scored by accuracy. Modules, in the order a run uses them:

- `data`: the test split (one paper a line) -> one item per QA pair, keyed ``<id>_<part_idx>``
- `answer`: the answering prompts, the True/False normaliser and the extractive scripted answerer
- `judge`: the three judge prompts, robust rating parsing, retries, the lexical proxy judge
- `scores`: Cor, Com, their F1 and the conciseness-adjusted score, overall and per category
- `consistency`: judge–human agreement (Bradley–Terry, Pearson, Spearman, pairwise AUC)
- `protocol`: which rules a run follows, ``posttrain`` (default) or ``official``
- `official`: RPC-Bench's own prompts and eval.py rules, read from a checkout with `ast`
- `commands`: the `posttrain rpc ...` workflows (answer, judge, score, export, consistency)

Importing this package registers the offline scripts ``scripted:rpc-extractive`` and
``scripted:rpc-lexical-judge``.
"""

from posttrain.eval.rpc import answer as _answer  # noqa: F401  (registers the scripts)
from posttrain.eval.rpc import judge as _judge  # noqa: F401

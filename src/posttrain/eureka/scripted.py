"""`scripted:eureka-agent`: the offline EurekAgent, labelled scripted in everything it writes.

It is a ChatModel (no weights, no network) that answers the prompts of
`posttrain.eureka.agents` with the same JSON the protocol asks of an LLM, so the loop, the
tools, the jail, the grader, git history and budgets are exercised by real work:

- as proposer, K proposals per round: round 1 (or no valid result yet) tries different
  methods and seeds; later rounds refine the best approach (its files are copied in; the
  implementer reads its `params.json` and changes parameters), keeping one fresh method when
  K > 2;
- as implementer, a fixed sequence of tool calls: list the files, write (or read and change)
  `params.json` and `solve.py`, run `python solve.py` in the jail, submit, read the feedback,
  done. The programs are real optimisers: circle packing by multistart SLSQP on centres and
  radii with border and pairwise constraints, basin hopping and a refinement shrinking radii
  to exact feasibility (warm-started from the parent's best); tabular classification by
  scikit-learn gradient boosting, random forests or logistic regression; speed_up by merge
  sort, a Fenwick tree (BIT) or bisect insertion, checked against the public reference.

`effort` (a factor, or "small" / "normal" / "large") scales the optimisers' work, so tests
run a short loop. A problem it has no optimiser for gets proposals it says it cannot
implement, and an implementer that gives up at once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from posttrain.eureka.agents import CONTEXT_TAG, PROPOSAL_TAG
from posttrain.models.chat.base import ChatResult, Choice, Conversation, GenerationParams
from posttrain.models.chat.images import content_text
from posttrain.models.chat.scripted import register_script

NAME = "scripted:eureka-agent"
LABEL = "[scripted]"
EFFORTS = {"small": 0.25, "normal": 1.0, "large": 3.0}

# Per problem: the methods round 1 cycles through (title, plan, params before scaling).
METHODS: dict[str, list[tuple[str, str, dict]]] = {
    "circle_packing_26": [
        (
            "multistart SLSQP from random centres",
            "Optimise centres and radii jointly with SLSQP (border and pairwise constraints, "
            "analytic Jacobians) from several random starts; keep the best; shrink radii to "
            "exact feasibility before writing circles.txt.",
            {"init": "random", "starts": 6, "hops": 4, "step": 0.05, "maxiter": 300},
        ),
        (
            "SLSQP from a jittered grid, then basin hopping",
            "Start from a jittered 6x5 grid, optimise with SLSQP, then basin-hop: perturb the "
            "centres of the best packing, re-optimise, keep improvements; refine to exact "
            "feasibility.",
            {"init": "grid", "starts": 2, "hops": 10, "step": 0.08, "maxiter": 300},
        ),
        (
            "random multistart with long basin hopping",
            "A few random SLSQP starts, then many small basin-hopping steps around the best.",
            {"init": "random", "starts": 3, "hops": 12, "step": 0.03, "maxiter": 300},
        ),
    ],
    "tabular_classification": [
        (
            "histogram gradient boosting",
            "scikit-learn HistGradientBoostingClassifier; 5-fold accuracy as a check.",
            {"model": "gradient_boosting", "n_estimators": 200, "learning_rate": 0.05},
        ),
        (
            "random forest",
            "scikit-learn RandomForestClassifier with 300 trees.",
            {"model": "random_forest", "n_estimators": 300},
        ),
        (
            "logistic regression on quadratic features",
            "Standardise, add degree-2 features, L2 logistic regression.",
            {"model": "logistic", "degree": 2, "C": 1.0},
        ),
    ],
    "speed_up": [
        (
            "merge-sort inversion count",
            "Count inversions while merge sorting: O(n log n), short runs by insertion.",
            {"method": "merge", "cutoff": 16},
        ),
        (
            "Fenwick tree (BIT) over value ranks",
            "Compress values to ranks; a binary indexed tree counts earlier larger values.",
            {"method": "bit"},
        ),
        (
            "bisect insertion",
            "Keep the seen values sorted; bisect gives the count of larger ones in C.",
            {"method": "bisect"},
        ),
    ],
}
PROGRAMS_BY_PROBLEM = {
    "circle_packing_26": "CIRCLE_PROGRAM",
    "tabular_classification": "TABULAR_PROGRAM",
    "speed_up": "SPEED_PROGRAM",
}
_SCALED = ("starts", "hops")  # how much work an optimiser does, scaled by `effort`


def _scale(params: dict, effort: float) -> dict:
    scaled = dict(params)
    for key in _SCALED:
        if key in scaled:
            scaled[key] = max(1, round(scaled[key] * effort))
    if "maxiter" in scaled:
        scaled["maxiter"] = max(50, round(scaled["maxiter"] * min(1.0, effort * 2)))
    if "n_estimators" in scaled:
        scaled["n_estimators"] = max(20, round(scaled["n_estimators"] * min(1.0, effort * 2)))
    return scaled


def _refinement(problem: str, index: int, seed: int, effort: float) -> tuple[str, str, dict]:
    """What to change in the parent's params.json for refinement number `index`."""
    if problem == "circle_packing_26":
        step = (0.02, 0.05, 0.1)[index % 3]
        change = {"seed": seed, "starts": 0, "hops": max(1, round(8 * effort)), "step": step}
        return (
            f"refine the best packing by basin hopping (step {step})",
            "Warm-start from the parent's best packing (best_z.json); basin-hop with this step "
            "size and a new seed; refine to exact feasibility.",
            change,
        )
    if problem == "tabular_classification":
        change = {
            "seed": seed,
            "n_estimators_factor": 1.5 + index,
            "learning_rate_factor": 0.7,
            "C_factor": (0.3, 3.0, 1.0)[index % 3],
        }
        return (
            "tune the best model's capacity",
            "Keep the parent's model; more estimators with a lower learning rate (or another "
            "regularisation strength), checked by 5-fold accuracy.",
            change,
        )
    change = {"seed": seed, "cutoff": (8, 24, 32)[index % 3]}
    return (
        f"tune the best method (insertion cutoff {change['cutoff']})",
        "Keep the parent's algorithm; change its small-run cutoff where it has one.",
        change,
    )


def scripted_proposals(context: dict, effort: float) -> list[dict]:
    """The proposer's answer for the context block of a proposer prompt."""
    problem, k, number = context["problem"], int(context["k"]), int(context["round"])
    base_seed = int(context.get("seed", 0)) * 1000 + number * 100
    methods = METHODS.get(problem)
    if methods is None:
        return [
            {
                "title": f"{LABEL} no optimiser for {problem}",
                "plan": "nothing to implement",
                "parent": None,
                "params": {},
            }
            for _ in range(k)
        ]
    best = _best(context)
    proposals = []
    for i in range(k):
        fresh = best is None or (k > 2 and i == k - 1)
        if fresh:
            title, plan, params = methods[(i + number - 1) % len(methods)]
            params = {**_scale(params, effort), "seed": base_seed + i}
            parent = None
        else:
            title, plan, params = _refinement(problem, i, base_seed + i, effort)
            parent = best["name"]
        proposals.append(
            {"title": f"{LABEL} {title}", "plan": plan, "parent": parent, "params": params}
        )
    return proposals


def _best(context: dict) -> dict | None:
    valid = [
        a for a in context.get("approaches", []) if a.get("valid") and a.get("score") is not None
    ]
    if not valid:
        return None
    sign = -1 if context.get("direction") == "min" else 1
    return max(valid, key=lambda a: sign * a["score"])


def _merge_params(parent: dict, change: dict) -> dict:
    """The parent's params with a refinement's changes (`*_factor` keys multiply)."""
    merged = dict(parent)
    for key, value in change.items():
        if key.endswith("_factor"):
            name = key.removesuffix("_factor")
            if isinstance(merged.get(name), int | float):
                new = merged[name] * value
                merged[name] = round(new) if isinstance(merged[name], int) else new
        else:
            merged[key] = value
    return merged


def scripted_actions(proposal: dict, observations: Sequence[str]) -> list[dict]:
    """The implementer's actions so far and next, given the tool results seen (one per
    action taken). Refinements depend on what reading `params.json` returned."""
    problem = proposal.get("problem")
    if problem not in PROGRAMS_BY_PROBLEM:
        return [{"tool": "done", "args": {"summary": f"{LABEL} no optimiser for {problem}"}}]
    program = globals()[PROGRAMS_BY_PROBLEM[problem]]
    title = proposal["title"]
    actions: list[dict] = [{"tool": "list_files", "args": {}}]
    if proposal.get("parent"):
        actions.append({"tool": "read_file", "args": {"path": "params.json"}})
        if len(observations) < 2:
            return actions
        parent_params = _read_params(observations[1])
        params = _merge_params(parent_params, proposal.get("params", {}))
        changed = ", ".join(f"{k}={params.get(k)}" for k in sorted(proposal.get("params", {})))
        changed = f"from {proposal['parent']}: {changed}"
    else:
        params = proposal.get("params", {})
        changed = "new approach: solve.py and params.json " + json.dumps(params, sort_keys=True)
    actions += [
        {"tool": "write_file", "args": {"path": "solve.py", "content": program}},
        {
            "tool": "write_file",
            "args": {"path": "params.json", "content": json.dumps(params, indent=1) + "\n"},
        },
        {"tool": "run_command", "args": {"command": "python solve.py"}},
        {"tool": "submit", "args": {"solution": title, "changed": changed}},
        {"tool": "feedback", "args": {}},
        {"tool": "done", "args": {"summary": f"{title}: submitted"}},
    ]
    return actions


def _read_params(observation: str) -> dict:
    text = observation.split("\n", 1)[1] if "\n" in observation else ""
    text = text.split("\n[budget:", 1)[0]
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


class EurekaScriptedAgent:
    """The ChatModel behind `scripted:eureka-agent` (see the module docstring)."""

    def __init__(self, effort: float | str = "normal") -> None:
        self.name = NAME
        factor = EFFORTS.get(effort) if isinstance(effort, str) else float(effort)
        if factor is None or not factor > 0:
            raise ValueError(
                f"effort: expected a number > 0 or one of {sorted(EFFORTS)}, got {effort!r}"
            )
        self.effort = factor

    def respond(self, conversation: Conversation) -> str:
        first = content_text(conversation[0].get("content", "")) if conversation else ""
        context = _tagged(first, CONTEXT_TAG)
        if context is not None:
            return json.dumps({"proposals": scripted_proposals(context, self.effort)})
        proposal = _tagged(first, PROPOSAL_TAG)
        if proposal is None:
            return f"{LABEL} I only answer EurekAgent proposer and implementer prompts."
        taken = sum(1 for m in conversation if m.get("role") == "assistant")
        observations = [
            content_text(m.get("content", "")) for m in conversation[1:] if m.get("role") == "user"
        ]
        actions = scripted_actions(proposal, observations)
        action = actions[min(taken, len(actions) - 1)]
        return json.dumps(action)

    def chat(
        self, conversations: Sequence[Conversation], params: GenerationParams | None = None
    ) -> list[ChatResult]:
        params = params or GenerationParams()
        return [
            ChatResult(
                model=self.name,
                choices=[Choice(text=self.respond(c)) for _ in range(params.n)],
            )
            for c in conversations
        ]


def _tagged(text: str, tag: str) -> dict | None:
    match = re.search("^" + re.escape(tag) + "(.*)$", text, re.MULTILINE)
    if match is None:
        return None
    try:
        value = json.loads(match[1])
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


register_script("eureka-agent", EurekaScriptedAgent, replace=True)


CIRCLE_PROGRAM = r"""# 26 circles: multistart SLSQP, basin hopping, exact-feasibility refinement.
import json
import time

import numpy as np
from scipy.optimize import minimize

N = 26
P = json.load(open("params.json"))
rng = np.random.default_rng(P.get("seed", 0))
I, J = np.triu_indices(N, 1)


def unpack(z):
    return z[:N], z[N : 2 * N], z[2 * N :]


def cons(z):
    x, y, r = unpack(z)
    d2 = (x[I] - x[J]) ** 2 + (y[I] - y[J]) ** 2 - (r[I] + r[J]) ** 2
    return np.concatenate([x - r, 1 - x - r, y - r, 1 - y - r, d2])


def cons_jac(z):
    x, y, r = unpack(z)
    m = len(I)
    jac = np.zeros((4 * N + m, 3 * N))
    e = np.eye(N)
    jac[:N, :N], jac[:N, 2 * N :] = e, -e
    jac[N : 2 * N, :N], jac[N : 2 * N, 2 * N :] = -e, -e
    jac[2 * N : 3 * N, N : 2 * N], jac[2 * N : 3 * N, 2 * N :] = e, -e
    jac[3 * N : 4 * N, N : 2 * N], jac[3 * N : 4 * N, 2 * N :] = -e, -e
    rows = 4 * N + np.arange(m)
    dx, dy, sr = x[I] - x[J], y[I] - y[J], r[I] + r[J]
    jac[rows, I], jac[rows, J] = 2 * dx, -2 * dx
    jac[rows, N + I], jac[rows, N + J] = 2 * dy, -2 * dy
    jac[rows, 2 * N + I], jac[rows, 2 * N + J] = -2 * sr, -2 * sr
    return jac


OBJ_GRAD = np.concatenate([np.zeros(2 * N), -np.ones(N)])


def solve(z0):
    bounds = [(0, 1)] * (2 * N) + [(0, 0.5)] * N
    out = minimize(
        lambda z: -z[2 * N :].sum(), z0, jac=lambda z: OBJ_GRAD, method="SLSQP",
        bounds=bounds, constraints=[{"type": "ineq", "fun": cons, "jac": cons_jac}],
        options={"maxiter": P.get("maxiter", 300), "ftol": 1e-12},
    )
    return out.x


def feasible(z):
    # Shrink radii until every constraint holds exactly (with a small margin).
    x, y, r = (a.copy() for a in unpack(z))
    r = np.clip(r, 0, None)
    r = np.minimum.reduce([r, x, 1 - x, y, 1 - y]) - 1e-12
    r = np.clip(r, 0, None)
    for _ in range(100):
        d = np.hypot(x[I] - x[J], y[I] - y[J])
        over = r[I] + r[J] - d
        bad = over > -1e-12
        if not bad.any():
            break
        for k in np.nonzero(bad)[0]:
            i, j = I[k], J[k]
            s = r[i] + r[j]
            if s > 0:
                f = max(0.0, d[k] - 1e-12) / s
                r[i] *= f
                r[j] *= f
    return np.concatenate([x, y, r])


def start():
    if P.get("init") == "grid":
        side = int(np.ceil(np.sqrt(N)))
        g = (np.arange(side) + 0.5) / side
        gx, gy = np.meshgrid(g, g)
        pts = np.stack([gx.ravel(), gy.ravel()], 1)[:N] + rng.normal(0, 0.02, (N, 2))
    else:
        pts = rng.uniform(0.1, 0.9, (N, 2))
    pts = np.clip(pts, 0.02, 0.98)
    return np.concatenate([pts[:, 0], pts[:, 1], np.full(N, 0.03)])


def score(z):
    return feasible(z)[2 * N :].sum()


t0 = time.time()
best = None
try:
    prev = np.array(json.load(open("best_z.json")))
    best = feasible(prev)
    print(f"warm start from best_z.json: {score(best):.6f}")
except (OSError, ValueError):
    pass
for s in range(max(P.get("starts", 4), 1 if best is None else 0)):
    z = feasible(solve(start()))
    if best is None or score(z) > score(best):
        best = z
    print(f"start {s}: {score(z):.6f} best {score(best):.6f}")
for h in range(P.get("hops", 0)):
    z = best.copy()
    step = P.get("step", 0.05)
    # Relocate one to three circles (often the smallest) and jiggle the rest: small moves
    # alone stay in the same basin.
    moved = rng.choice(N, rng.integers(1, 4), replace=False)
    if rng.random() < 0.5:
        moved = np.argsort(z[2 * N :])[: len(moved)]
    z[moved], z[N + moved], z[2 * N + moved] = rng.uniform(0.05, 0.95, (3, len(moved)))
    z[2 * N + moved] = 0.01
    z[: 2 * N] = np.clip(z[: 2 * N] + rng.normal(0, step, 2 * N), 0.01, 0.99)
    z[2 * N :] *= 0.95
    z = feasible(solve(z))
    if score(z) > score(best):
        best = z
    print(f"hop {h}: {score(z):.6f} best {score(best):.6f}")
best = feasible(best)
json.dump(best.tolist(), open("best_z.json", "w"))
x, y, r = unpack(best)
with open("circles.txt", "w") as f:
    for a, b, c in zip(x, y, r):
        f.write(f"{float(a)!r} {float(b)!r} {float(c)!r}\n")
print(f"sum of radii {r.sum():.6f} in {time.time() - t0:.1f} s")
"""


TABULAR_PROGRAM = r"""# A scikit-learn classifier: 5-fold accuracy, then predictions.csv.
import json

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import PolynomialFeatures, StandardScaler

P = json.load(open("params.json"))
train = np.genfromtxt("data/train.csv", delimiter=",", names=True)
test = np.genfromtxt("data/test_features.csv", delimiter=",", names=True)
features = [n for n in train.dtype.names if n not in ("id", "label")]
X = np.column_stack([train[n] for n in features])
y = train["label"].astype(int)
X_test = np.column_stack([test[n] for n in features])
seed = P.get("seed", 0)
if P["model"] == "gradient_boosting":
    model = HistGradientBoostingClassifier(
        learning_rate=P.get("learning_rate", 0.1), max_iter=P.get("n_estimators", 200),
        max_depth=P.get("max_depth"), random_state=seed,
    )
elif P["model"] == "random_forest":
    model = RandomForestClassifier(
        n_estimators=P.get("n_estimators", 200), max_depth=P.get("max_depth"),
        random_state=seed, n_jobs=1,
    )
else:
    model = make_pipeline(
        StandardScaler(), PolynomialFeatures(P.get("degree", 1)), StandardScaler(),
        LogisticRegression(C=P.get("C", 1.0), max_iter=2000),
    )
cv = cross_val_score(model, X, y, cv=5)
print(f"{P['model']}: 5-fold accuracy {cv.mean():.4f} +- {cv.std():.4f}")
model.fit(X, y)
pred = model.predict(X_test)
with open("predictions.csv", "w") as f:
    f.write("id,label\n")
    for i, p in zip(test["id"].astype(int), pred):
        f.write(f"{i},{int(p)}\n")
print(f"wrote {len(pred)} predictions")
"""


SPEED_PROGRAM = r"""# Write solution.py (params.json), check it against reference.py, time both.
import importlib.util
import json
import random
import time

P = json.load(open("params.json"))

MERGE = '''# count_inversions by merge sort; runs up to CUTOFF by insertion.

CUTOFF = {cutoff}


def _sort_count(a):
    n = len(a)
    if n <= CUTOFF:
        a = list(a)
        count = 0
        for i in range(1, n):
            v = a[i]
            j = i
            while j and a[j - 1] > v:
                a[j] = a[j - 1]
                j -= 1
            count += i - j
            a[j] = v
        return a, count
    mid = n // 2
    left, cl = _sort_count(a[:mid])
    right, cr = _sort_count(a[mid:])
    merged = []
    count = cl + cr
    i = j = 0
    nl, nr = len(left), len(right)
    while i < nl and j < nr:
        if right[j] < left[i]:
            merged.append(right[j])
            count += nl - i
            j += 1
        else:
            merged.append(left[i])
            i += 1
    merged.extend(left[i:])
    merged.extend(right[j:])
    return merged, count


def count_inversions(values):
    return _sort_count(list(values))[1]
'''

BIT = '''# count_inversions with a Fenwick tree (binary indexed tree) over value ranks: O(n log n).


def count_inversions(values):
    ranks = {{v: i + 1 for i, v in enumerate(sorted(set(values)))}}
    size = len(ranks)
    tree = [0] * (size + 1)
    count = 0
    seen = 0
    for v in values:
        r = ranks[v]
        # elements seen so far that are <= v
        i = r
        le = 0
        while i:
            le += tree[i]
            i &= i - 1
        count += seen - le
        seen += 1
        i = r
        while i <= size:
            tree[i] += 1
            i += i & -i
    return count
'''

BISECT = '''# count_inversions by bisect insertion into a sorted list.
from bisect import bisect_right, insort


def count_inversions(values):
    seen = []
    count = 0
    for k, v in enumerate(values):
        count += k - bisect_right(seen, v)
        insort(seen, v)
    return count
'''

source = {"merge": MERGE, "bit": BIT, "bisect": BISECT}[P["method"]]
with open("solution.py", "w") as f:
    f.write(source.format(cutoff=int(P.get("cutoff", 16))))


def load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.count_inversions


mine, ref = load("solution.py", "solution"), load("reference.py", "reference")
rng = random.Random(P.get("seed", 0))
cases = [[], [1], [2, 1], [1, 1, 1], [3, -1, 3, 2, -1]]
cases += [[rng.randint(-50, 50) for _ in range(rng.randint(0, 300))] for _ in range(30)]
for case in cases:
    assert mine(case) == ref(case), f"wrong on {case[:10]}"
data = [rng.randint(-10**6, 10**6) for _ in range(1000)]
t0 = time.perf_counter(); ref(data); t_ref = time.perf_counter() - t0
t0 = time.perf_counter(); mine(data); t_mine = time.perf_counter() - t0
print(f"{P['method']}: correct on {len(cases)} cases; speed-up {t_ref / t_mine:.1f}x on n=1000")
"""

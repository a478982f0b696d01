"""One grammar for the strings that name a chat model, a reward, a scorer, a detector or an env.

Configs and command lines name what to build with one string, a SPEC. Every consumer parses
it with `parse_spec`, so a form means the same wherever it is accepted (docs/specs.md has the
table: each form, what it builds, where it is accepted). The forms, in the order they are
tried:

  NAME                 a registered name (`exact_match`, `statistical`, `length`, `arithmetic`)
  NAME:ARGUMENT        a registered name that takes an argument (`random:3`, `judge:CHAT_SPEC`)
  scripted:NAME        a registered deterministic chat script
  openai:MODEL[@BASE_URL][#KEY_VAR]
                       an OpenAI-compatible endpoint; the API key comes from the environment
                       variable KEY_VAR, never from the spec (which ends up in configs and logs)
  reward-model:DIR[?OPTIONS] | reward-model:URL
                       a reward model: a local directory or a `posttrain serve-rm` server
  http(s)://HOST:PORT  a served model
  DIR[?OPTIONS]        an existing local directory (OPTIONS only where the consumer takes them)
  package.module:attr[.attr] | package.module.attr
                       an importable object (`resolve_import_path` imports it)

A consumer names the kinds it accepts; a prefix it does not accept means nothing special to
it (where rewards are parsed, `openai:x` is an import path, as it always was). A bad spec is a
ValueError that quotes the spec and says what the consumer expected.

The second half says what a model directory holds, from its config.json and marker files
(`describe_model_dir`): a causal LM, a Bradley–Terry sequence classifier, WildReward's ordinal
reward model, a PEFT adapter... so every loader that must choose by
what a directory holds asks the same function.

This module imports nothing from the rest of posttrain, so every stage may use it.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any


class SpecKind(StrEnum):
    """The forms a spec can take; `FORMS` shows each as it is written."""

    NAME = "name"
    SCRIPTED = "scripted"
    OPENAI = "openai"
    REWARD_MODEL = "reward-model"
    URL = "url"
    DIRECTORY = "directory"
    IMPORT_PATH = "import-path"


FORMS = {
    SpecKind.NAME: "a registered name",
    SpecKind.SCRIPTED: "'scripted:NAME'",
    SpecKind.OPENAI: "'openai:MODEL[@BASE_URL][#KEY_VAR]'",
    SpecKind.REWARD_MODEL: "'reward-model:DIR|URL'",
    SpecKind.URL: "an http(s):// URL",
    SpecKind.DIRECTORY: "a local directory",
    SpecKind.IMPORT_PATH: "an import path such as 'package.module:function'",
}
"""How each kind is written, for error messages that list what a consumer accepts."""

SCRIPTED_PREFIX = "scripted:"
OPENAI_PREFIX = "openai:"
REWARD_MODEL_PREFIX = "reward-model:"
URL_SCHEMES = ("http://", "https://")


@dataclass(frozen=True)
class Spec:
    """A parsed spec: `kind` says which form `text` has; only that form's fields are set."""

    text: str
    """The spec as written."""
    kind: SpecKind
    name: str = ""
    """NAME: the registered name; SCRIPTED: the script's name (without `scripted:`)."""
    argument: str | None = None
    """NAME: what follows `NAME:` for a name that takes an argument (None: the name alone)."""
    model: str = ""
    """OPENAI: the model name sent to the endpoint."""
    base_url: str = ""
    """OPENAI: the endpoint ("" leaves it to OPENAI_BASE_URL)."""
    key_var: str = ""
    """OPENAI: the environment variable holding the API key ("": the client's default)."""
    path: Path | None = None
    """DIRECTORY, and REWARD_MODEL when local: the directory (`~` expanded)."""
    query: str = ""
    """DIRECTORY / REWARD_MODEL: the options after `?`, unparsed (the consumer knows them)."""
    url: str = ""
    """URL, and REWARD_MODEL when served: the server's URL."""
    module: str = ""
    """IMPORT_PATH: the module to import."""
    attribute: str = ""
    """IMPORT_PATH: the dotted attribute path inside the module."""


def expected_forms(accept: Collection[SpecKind], names: Collection[str] = ()) -> str:
    """`FORMS` of the accepted kinds as one phrase ("a registered name (a, b), ... or ...")."""
    words = []
    for kind in SpecKind:  # the documented order, whatever order `accept` has
        if kind in accept:
            form = FORMS[kind]
            if kind is SpecKind.NAME and names:
                form += f" ({', '.join(sorted(names))})"
            words.append(form)
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def parse_spec(
    text: str,
    accept: Collection[SpecKind],
    *,
    what: str = "spec",
    names: Collection[str] = (),
    takes_argument: Collection[str] = (),
    directory_options: bool = False,
    expected: str | None = None,
) -> Spec:
    """Parse `text` as one of the `accept`ed forms (tried in the module docstring's order).

    `names`: the registered names (NAME); `takes_argument`: the names written `NAME:ARGUMENT`
    (list a name in both when it may also stand alone). `directory_options`: whether
    `DIR?OPTIONS` splits off options (else the whole text is the directory). `what` and
    `expected` word the error: "unknown {what} 'TEXT' (why); expected {expected}" (`expected`
    defaults to the accepted forms).
    """
    accept = frozenset(accept)
    expected = expected or expected_forms(accept, names)
    if SpecKind.NAME in accept:
        head, colon, argument = text.partition(":")
        if text in names:
            return Spec(text, SpecKind.NAME, name=text)
        if colon and head in takes_argument:
            return Spec(text, SpecKind.NAME, name=head, argument=argument)
    if SpecKind.SCRIPTED in accept and text.startswith(SCRIPTED_PREFIX):
        return Spec(text, SpecKind.SCRIPTED, name=text.removeprefix(SCRIPTED_PREFIX))
    if SpecKind.OPENAI in accept and text.startswith(OPENAI_PREFIX):
        rest, _, key_var = text.removeprefix(OPENAI_PREFIX).partition("#")
        model, _, base_url = rest.partition("@")
        if not model:
            raise ValueError(f"{what} {text!r} names no model; expected {expected}")
        return Spec(text, SpecKind.OPENAI, model=model, base_url=base_url, key_var=key_var)
    if SpecKind.REWARD_MODEL in accept and text.startswith(REWARD_MODEL_PREFIX):
        return _reward_model(text)
    if SpecKind.URL in accept and text.startswith(URL_SCHEMES):
        return Spec(text, SpecKind.URL, url=text)
    if SpecKind.DIRECTORY in accept:
        where, _, query = text.partition("?") if directory_options else (text, "", "")
        path = Path(where).expanduser()
        if where and path.is_dir():
            return Spec(text, SpecKind.DIRECTORY, path=path, query=query)
    if SpecKind.IMPORT_PATH in accept and (":" in text or "." in text):
        return _import_path(text, what)
    if SpecKind.DIRECTORY in accept and text and not Path(where).expanduser().exists():
        reason = "no such directory"
    else:
        reason = "not a recognised form"
    raise ValueError(f"unknown {what} {text!r} ({reason}); expected {expected}")


def _reward_model(text: str) -> Spec:
    where = text.removeprefix(REWARD_MODEL_PREFIX)
    if where.startswith(URL_SCHEMES):  # a server has its own settings: no options to split
        return Spec(text, SpecKind.REWARD_MODEL, url=where)
    directory, _, query = where.partition("?")
    path = Path(directory).expanduser()
    if not directory or not path.is_dir():
        raise ValueError(f"reward model {where!r}: no such directory (or http(s):// URL)")
    return Spec(text, SpecKind.REWARD_MODEL, path=path, query=query)


def _import_path(text: str, what: str) -> Spec:
    # The colon marks where the module ends, so attribute paths (`module:Class.method`) work;
    # without one, the last dotted part is the attribute.
    if ":" in text:
        module, _, attribute = text.partition(":")
    else:
        module, _, attribute = text.rpartition(".")
    if not module or not attribute:
        raise ValueError(
            f"malformed {what} import path {text!r}; expected 'package.module:attribute'"
        )
    return Spec(text, SpecKind.IMPORT_PATH, module=module, attribute=attribute)


def resolve_import_path(spec: Spec, what: str = "spec", *, must_be_callable: bool = True) -> Any:
    """The callable an IMPORT_PATH spec names: its module imported, its attributes followed.

    An attribute a package does not expose is tried as a submodule (`package:sub.Factory`).
    Any failure is a ValueError quoting the spec. `must_be_callable=False` lets it name any
    object (a registry entry such as a `PolicyLoss`).
    """
    if spec.kind is not SpecKind.IMPORT_PATH:
        raise ValueError(f"{what} {spec.text!r} is not an import path")
    target: Any = _import(spec.module, spec, what)
    for attr in spec.attribute.split("."):
        if not hasattr(target, attr) and hasattr(target, "__path__"):  # a package's submodule?
            submodule = f"{target.__name__}.{attr}"
            if importlib.util.find_spec(submodule) is not None:
                _import(submodule, spec, what)
        if not hasattr(target, attr):
            raise ValueError(
                f"module {spec.module!r} has no {spec.attribute!r} ({what} {spec.text!r})"
            )
        target = getattr(target, attr)
    if must_be_callable and not callable(target):
        raise ValueError(f"{what} {spec.text!r} resolved to a non-callable {type(target).__name__}")
    return target


def _import(module: str, spec: Spec, what: str) -> Any:
    try:
        return importlib.import_module(module)
    except Exception as exc:  # any import-time failure is a bad spec from the caller's view
        raise ValueError(f"cannot import module {module!r} ({what} {spec.text!r}): {exc}") from exc


# --- what a model directory holds ---------------------------------------------------------------

CONFIG_FILE = "config.json"
"""A transformers model's configuration: `model_type` and `architectures` say what it is."""
ADAPTER_FILE = "adapter_config.json"
"""A PEFT adapter (weights to put on a base model named inside it)."""
ORDINAL_FILE = "ordinal.json"
"""Written by WildReward's ordinal training next to the classifier: K, the head, its biases
(`posttrain.rewards.ordinal.META_FILE`)."""


class ModelKind(StrEnum):
    """What a model directory holds."""

    CAUSAL_LM = "causal-lm"
    """A text generator (`...ForCausalLM`, `...LMHeadModel`)."""
    BRADLEY_TERRY = "bradley-terry"
    """A sequence classifier with one output: a Bradley–Terry reward model."""
    SEQUENCE_CLASSIFIER = "sequence-classifier"
    """A sequence classifier with another number of outputs."""
    ORDINAL = "ordinal"
    """WildReward's ordinal reward model: a sequence classifier plus `ORDINAL_FILE`."""
    PEFT_ADAPTER = "peft-adapter"
    """A PEFT adapter alone (`ADAPTER_FILE`, no `CONFIG_FILE`)."""
    OTHER = "other"
    """A `CONFIG_FILE` naming no architecture above."""
    NO_MODEL = "no-model"
    """Neither `CONFIG_FILE` nor `ADAPTER_FILE`: not a model directory."""


@dataclass(frozen=True)
class ModelDir:
    """What `describe_model_dir` read: the kind, and the config fields it was decided from."""

    path: Path
    kind: ModelKind
    model_type: str | None = None
    architectures: tuple[str, ...] = ()
    num_labels: int | None = None
    """From `id2label` (else `num_labels`) in the config; None when it says neither."""


def describe_model_dir(path: str | Path) -> ModelDir:
    """What the directory `path` holds, from its marker files and config.json (never the
    weights, so this is instant). A ValueError names a path that is not a directory and a
    config.json that is not a JSON object (with the line)."""
    path = Path(path).expanduser()
    if not path.is_dir():
        problem = "is a file; expected a model directory" if path.exists() else "no such directory"
        raise ValueError(f"{path}: {problem}")
    config_path = path / CONFIG_FILE
    config = _read_config(config_path) if config_path.is_file() else None
    if config is None:
        if (path / ORDINAL_FILE).is_file():
            return ModelDir(path, ModelKind.ORDINAL)
        has_adapter = (path / ADAPTER_FILE).is_file()
        return ModelDir(path, ModelKind.PEFT_ADAPTER if has_adapter else ModelKind.NO_MODEL)
    model_type = config.get("model_type")
    architectures = tuple(str(a) for a in config.get("architectures") or ())
    labels = config.get("id2label")
    num_labels = len(labels) if isinstance(labels, dict) and labels else config.get("num_labels")
    fields = {"model_type": model_type, "architectures": architectures, "num_labels": num_labels}
    if (path / ORDINAL_FILE).is_file():
        kind = ModelKind.ORDINAL
    elif any(a.endswith("ForSequenceClassification") for a in architectures):
        kind = ModelKind.BRADLEY_TERRY if num_labels == 1 else ModelKind.SEQUENCE_CLASSIFIER
    elif any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures):
        kind = ModelKind.CAUSAL_LM
    else:
        kind = ModelKind.OTHER
    return ModelDir(path, kind, **fields)


def _read_config(path: Path) -> dict[str, Any]:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(config).__name__}")
    return config

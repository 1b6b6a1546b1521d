"""The models the command line can train: name -> class, imported on first use.

A model class needs ``fit(data)`` (any input of
:func:`fastrec.datasets._triples.rating_triples`), ``recommend(users, n, *,
exclude_seen)``, ``save(path)`` and ``load(path)``.  Adding one is one line here
(and one in ``FEATURE_MODELS`` when it also needs item features).
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from fastrec.cli._parser import CliError

MODELS = {
    "mf": "fastrec.mf:MatrixFactorization",
    "itemknn": "fastrec.recommenders:ItemKNN",
    "userknn": "fastrec.recommenders:UserKNN",
    "content": "fastrec.recommenders:ContentKNN",
    # models of behaviour data (plays, clicks): found on the package, so an
    # installation without them says "not available" rather than failing to start
    "als": "fastrec:ALS",
    "bpr": "fastrec:BPR",
    "warp": "fastrec:WARP",
}

# Models built from item features as well as ratings: `fastrec fit --features FILE`
# (or a MovieLens folder's genres) supplies their ``features`` and ``item_ids``.
FEATURE_MODELS = ("content",)
FEATURE_PARAMETERS = ("features", "item_ids")


def model_class(name: str) -> type[Any]:
    """The class registered as ``name``."""
    if name not in MODELS:
        raise CliError(f"unknown model {name!r}; choose one of {', '.join(sorted(MODELS))}")
    module, _, attribute = MODELS[name].partition(":")
    try:
        return getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as exc:
        raise CliError(f"model {name!r} is not available in this installation ({exc})") from exc


def available(name: str) -> bool:
    """Whether the model registered as ``name`` can be imported here."""
    try:
        model_class(name)
    except CliError:
        return False
    return True


def parameter_names(cls: type) -> list[str]:
    """The keyword parameters of ``cls``'s constructor."""
    return [
        p.name
        for p in inspect.signature(cls).parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]


def parse_params(pairs: list[str], cls: type) -> dict[str, Any]:
    """``["n_factors=64", "lr=0.01"]`` -> keyword arguments of ``cls`` (values as Python literals)."""
    import ast

    names = [n for n in parameter_names(cls) if n not in FEATURE_PARAMETERS]
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise CliError(f"--param takes KEY=VALUE, got {pair!r}")
        if key in FEATURE_PARAMETERS and key in parameter_names(cls):
            raise CliError(f"{cls.__name__}'s {key} come from --features FILE, not --param")
        if key not in names:
            raise CliError(f"{cls.__name__} has no parameter {key!r}; it takes {', '.join(names)}")
        try:
            params[key] = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            params[key] = text.strip()  # a bare word such as backend=cpp
    return params


def model_for_file(path: str, name: str | None) -> Any:
    """Load a saved model: the registered class ``name``, or the one whose format the file names."""
    from fastrec._archive import format_name_of

    if name is not None:
        return model_class(name).load(path)
    format_name = format_name_of(path)  # ValueError for a file that is not a saved model
    for registered in MODELS:
        if not available(registered):  # a model this installation lacks saved nothing here
            continue
        cls = model_class(registered)
        if format_name in (f"fastrec.{cls.__name__}", getattr(cls, "FORMAT_NAME", None)):
            return cls.load(path)
    raise CliError(
        f"{path} holds no model format this command knows ({format_name}); pass "
        f"--model with one of {', '.join(sorted(MODELS))}"
    )

"""rules.yaml -> `Ruleset`, or `ConfigError` listing every problem with file:line:column.

The file, version 1::

    version: 1                     # required; this maild reads version 1
    queues:                        # required, at least one; the first is the default queue
      general: {address: support@example.com}
      billing: {address: billing@example.com}

Queue names are lower-case identifiers (letters, digits, '-', '_'; starting with a letter
or digit). Each address belongs to one queue only (compared case-insensitively). Unknown
keys are refused at every level.

Loading runs in three steps: parse with positions (`rules.source.load_yaml`), check the
shape of each section (the pydantic models below, all errors at once), then the checks
that span sections (`CHECKS`, each yields (key path, message)). To add a section: a field
on `_RulesFile`, a model for its entries, its checks in `CHECKS`, and its frozen form in
`rules/model.py` built by `_build`.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator

from rules.model import Queue, Ruleset
from rules.source import (Address, ConfigError, KeyPath, Locator, StrictModel, load_yaml,
                          problem_at, validate)

log = logging.getLogger(__name__)

SUPPORTED_VERSION = 1


def _version(value: int) -> int:
    if value != SUPPORTED_VERSION:
        raise ValueError(f"unsupported version {value}; this maild reads version "
                         f"{SUPPORTED_VERSION}")
    return value


def _queue_name(value: str) -> str:
    if not value or not (value[0].isascii() and value[0].isalnum()) or value.lower() != value \
            or not all(c.isascii() and (c.isalnum() or c in "-_") for c in value):
        raise ValueError("a queue name is lower-case letters, digits, '-' and '_', starting "
                         f"with a letter or digit; got {value!r}")
    return value


def _some_queues(value: dict) -> dict:
    if not value:
        raise ValueError("define at least one queue, e.g. general: {address: support@example.com}")
    return value


QueueName = Annotated[str, AfterValidator(_queue_name)]


class _Queue(StrictModel):
    address: Address


class _RulesFile(StrictModel):
    version: Annotated[int, AfterValidator(_version)]
    queues: Annotated[dict[QueueName, _Queue], AfterValidator(_some_queues)]


# --- checks across entries: each yields (key path, message) -----------------------------

def _unique_addresses(doc: _RulesFile) -> Iterator[tuple[KeyPath, str]]:
    owner: dict[str, str] = {}
    for name, queue in doc.queues.items():
        key = queue.address.lower()
        if key in owner:
            yield (("queues", name, "address"),
                   f"address {queue.address} already belongs to queue {owner[key]!r}")
        else:
            owner[key] = name


CHECKS: tuple[Callable[[_RulesFile], Iterator[tuple[KeyPath, str]]], ...] = (
    _unique_addresses,
)


def load_rules(path: Path) -> Ruleset:
    """Read and validate rules.yaml; raise ConfigError naming every problem found."""
    data, locator = load_yaml(path)
    doc = validate(_RulesFile, data, locator, path)
    _check(doc, locator, path)
    ruleset = _build(doc)
    log.debug("loaded %s: %d queue(s)", path, len(ruleset.queues))
    return ruleset


def _check(doc: _RulesFile, locator: Locator, path: Path) -> None:
    problems = [problem_at(path, locator, key, message)
                for check in CHECKS for key, message in check(doc)]
    if problems:
        raise ConfigError(problems)


def _build(doc: _RulesFile) -> Ruleset:
    return Ruleset(version=doc.version,
                   queues=tuple(Queue(name, q.address) for name, q in doc.queues.items()))

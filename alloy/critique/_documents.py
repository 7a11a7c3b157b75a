"""The intents of a loaded snapshot, as critique reads them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from alloy.critique._rules import IntentDocument
from alloy.load import Entry, Repository, reload_intent
from alloy.model import Intent


@dataclass
class Documents:
    """Every intent whose document reads as an Intent, and those that do not."""

    #: name -> the intent; it may still fail the loader's cross checks (an evidence link to an
    #: output no block declares is exactly what critique explains).
    intents: dict[str, IntentDocument] = field(default_factory=dict)
    #: name -> path of the intents whose document is not a valid Intent (run `alloy check`)
    unreadable: dict[str, str] = field(default_factory=dict)


def intent_documents(repository: Repository, entries: Mapping[str, Entry]) -> Documents:
    """The intents of `repository`, loaded from the snapshot `entries` (path -> `Entry`, from
    the work tree by `alloy.workspace.load` or from a git tree): a model for every document
    that passes the schema, with its bytes for the lines of the findings."""
    out = Documents()
    for name, doc in sorted(repository.intents().items()):
        entry = entries.get(doc.path)
        if entry is None or entry.data is None:
            out.unreadable[name] = doc.path
            continue
        model = doc.model
        if not isinstance(model, Intent):  # a result from the parse cache carries no model
            model = reload_intent(doc.path, entry, repository.project).model
        if not isinstance(model, Intent) or model.metadata.name != name:
            out.unreadable[name] = doc.path
            continue
        out.intents[name] = IntentDocument(name, doc.path, entry.data, model)
    return out

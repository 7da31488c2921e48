"""Model artifacts: a folder holding config, vocabulary and tensors, guarded by checksums.

Nothing is unpickled. Tensors are written with ``torch.save`` and read back with
``torch.load(weights_only=True)``; the class to rebuild is named in ``model.json`` and must be a
:class:`~recframe.interfaces.Model` subclass. ``checksums.json`` (SHA-256 of every file) is verified
before anything is loaded, so a tampered or truncated artifact is refused, not served.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from recframe import atomic
from recframe.interfaces import ArtifactError, Model
from recframe.vocab import ItemVocab

FORMAT_VERSION = 1
FILES = ("model.json", "vocab.json", "weights.pt")

# Classes that artifacts of this format may name by an earlier module path: same class, same state,
# so such an artifact keeps loading (and serving) after recframe's model modules were regrouped.
MOVED_TARGETS = {
    "recframe.model.gru4rec.GRU4RecModel": "recframe.model.seq.gru.GRU4RecModel",
    "recframe.model.lstm.LSTMModel": "recframe.model.seq.lstm.LSTMModel",
    "recframe.model.sasrec.SASRecModel": "recframe.model.seq.sasrec.SASRecModel",
    "recframe.model.knn.SKNN": "recframe.model.knn.sknn.SKNN",
    "recframe.model.knn.VSKNN": "recframe.model.knn.vsknn.VSKNN",
    "recframe.model.knn_stan.STAN": "recframe.model.knn.stan.STAN",
    "recframe.model.knn_stan.VSTAN": "recframe.model.knn.vstan.VSTAN",
}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _to_tensors(tensors: dict[str, Any]) -> dict[str, Any]:
    import torch

    out = {}
    for k, v in tensors.items():
        out[k] = torch.from_numpy(np.ascontiguousarray(v)) if isinstance(v, np.ndarray) else v.detach().cpu()
    return out


def save_model(model: Model, directory: str | Path) -> Path:
    """Write ``model`` to ``directory`` atomically (a temp folder renamed into place).

    A write that fails half-way (disk full, file too large) removes the temp folder and leaves any
    previous artifact in place: a reader sees the old artifact or the new one, never a mix.
    """
    import io

    import torch

    if model.vocab is None:
        raise ArtifactError("cannot save a model that has not been fitted")
    target = Path(directory)
    with atomic.atomic_dir(target) as tmp:
        config, tensors = model.get_state()
        cls = type(model)
        meta = {
            "format_version": FORMAT_VERSION,
            "target": f"{cls.__module__}.{cls.__qualname__}",
            "name": model.name,
            "n_items": len(model.vocab),
            "config": config,
        }
        (tmp / "model.json").write_text(json.dumps(meta, indent=2))
        (tmp / "vocab.json").write_text(json.dumps(model.vocab.to_dict()))
        # serialised in memory, written by Python: a failed write is an OSError with its errno
        buf = io.BytesIO()
        torch.save(_to_tensors(tensors), buf)
        (tmp / "weights.pt").write_bytes(buf.getbuffer())
        sums = {name: _sha256(tmp / name) for name in FILES}
        (tmp / "checksums.json").write_text(json.dumps({"sha256": sums}, indent=2))
    return target


def verify(directory: str | Path) -> dict[str, Any]:
    """Check every file against ``checksums.json``; return the parsed ``model.json``."""
    d = Path(directory)
    if not (d / "checksums.json").exists():
        raise ArtifactError(f"no model artifact at {d} (checksums.json missing): run the 'train' step first")
    sums = json.loads((d / "checksums.json").read_text())["sha256"]
    for name in FILES:
        if not (d / name).exists():
            raise ArtifactError(f"model artifact {d} is incomplete: {name} is missing")
        if _sha256(d / name) != sums.get(name):
            raise ArtifactError(f"checksum mismatch for {d / name}: the artifact was modified; retrain or restore it")
    return json.loads((d / "model.json").read_text())


def _resolve(target: str) -> type[Model]:
    target = MOVED_TARGETS.get(target, target)
    module, _, name = target.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise ArtifactError(f"artifact names model class {target!r}, which cannot be imported: {e}") from None
    if not (isinstance(cls, type) and issubclass(cls, Model)):
        raise ArtifactError(f"artifact names {target!r}, which is not a recframe Model")
    return cls


def load_model(directory: str | Path) -> Model:
    """Verify and load an artifact written by :func:`save_model`."""
    import torch

    d = Path(directory)
    meta = verify(d)
    vocab = ItemVocab.from_dict(json.loads((d / "vocab.json").read_text()))
    tensors = torch.load(d / "weights.pt", map_location="cpu", weights_only=True)
    cls = _resolve(meta["target"])
    model = cls.from_state(meta["config"], tensors, vocab)
    model.name = meta.get("name", model.name)
    return model

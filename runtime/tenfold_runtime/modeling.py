"""Loading a Hugging Face model and computing what it serves in-process: sentence embeddings
(an encoder, mean-pooled), logits (a sequence classifier, one per label) or relevance scores
(a cross-encoder reranker, one per query-document pair).

The generated Triton `model.py` repeats the pooling below (it runs where tenfold_runtime is
not installed); the e2e tests compare the two, so they cannot drift apart silently.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tenfold.api.enums import Task

# sentence-transformers checkpoints ship their own limit; plain ones fall back to this.
DEFAULT_MAX_LENGTH = 256
# A reranker's input in-process (calibration files, the guard): "query<TAB>document".
PAIR_SEPARATOR = "\t"


@dataclass
class LoadedModel:
    """An fp32 model, its tokenizer and the sequence length it was trained for."""

    model: nn.Module
    tokenizer: object
    max_length: int
    hidden_size: int
    task: Task = Task.EMBEDDING

    @property
    def output_width(self) -> int:
        """How wide each served row is: the embedding (hidden size) or one logit per label."""
        if self.task is Task.CLASSIFICATION:
            return int(self.model.config.num_labels)  # type: ignore[union-attr]
        if self.task is Task.RERANKING:
            return 1
        return self.hidden_size

    def outputs(self, module: nn.Module, texts: Sequence[str]) -> np.ndarray:
        """What `module` (this model, maybe converted) serves for `texts`, as float32 rows."""
        return run_model(module, self.tokenizer, texts, self.task, max_length=self.max_length)


def max_sequence_length(model_dir: Path) -> int:
    """The sequence limit from sentence_bert_config.json, or DEFAULT_MAX_LENGTH."""
    config = model_dir / "sentence_bert_config.json"
    if config.is_file():
        return int(json.loads(config.read_text()).get("max_seq_length", DEFAULT_MAX_LENGTH))
    return DEFAULT_MAX_LENGTH


def load_encoder(model_dir: Path, device: str = "cpu") -> LoadedModel:
    """Load an fp32 encoder and tokenizer from a local folder, never touching the network."""
    return load_model(model_dir, Task.EMBEDDING, device)


def load_model(model_dir: Path, task: Task, device: str = "cpu") -> LoadedModel:
    """Load the fp32 model `task` serves (an encoder, or a sequence classifier with its head)
    and its tokenizer from a local folder, never touching the network."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import transformers  # heavy: imported when needed

    auto = _AUTO_CLASSES.get(task)
    if auto is None:
        raise ValueError(f"no Hugging Face model class serves task {task}")
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    loader = getattr(transformers, auto)
    model = loader.from_pretrained(model_dir, dtype=torch.float32).eval().to(device)
    labels = getattr(model.config, "num_labels", 1)
    if task is Task.RERANKING and labels != 1:
        raise ValueError(
            f"a reranker answers one score per query-document pair; this model has {labels} "
            "labels (serve it as a classifier)"
        )
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        max_length=max_sequence_length(model_dir),
        hidden_size=int(model.config.hidden_size),
        task=task,
    )


# The transformers class that loads each task's model (its head included).
_AUTO_CLASSES: Mapping[Task, str] = {
    Task.EMBEDDING: "AutoModel",
    Task.CLASSIFICATION: "AutoModelForSequenceClassification",
    Task.RERANKING: "AutoModelForSequenceClassification",
}


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average the token vectors that are not padding, then L2-normalize (MiniLM's recipe)."""
    mask = attention_mask.unsqueeze(-1).to(torch.float32)
    summed = (hidden.to(torch.float32) * mask).sum(dim=1)
    pooled = summed / mask.sum(dim=1).clamp(min=1e-9)
    return nn.functional.normalize(pooled, p=2, dim=1)


def embed(
    model: nn.Module,
    tokenizer: object,
    texts: Sequence[str],
    *,
    max_length: int = DEFAULT_MAX_LENGTH,
    batch_size: int = 32,
) -> np.ndarray:
    """Embeddings [len(texts), hidden] as float32, computed in batches of `batch_size`."""
    return run_model(
        model, tokenizer, texts, Task.EMBEDDING, max_length=max_length, batch_size=batch_size
    )


def _pooled(output: object, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    return mean_pool(output.last_hidden_state, batch["attention_mask"])  # type: ignore[attr-defined]


def _logits(output: object, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    return output.logits.to(torch.float32)  # type: ignore[attr-defined]


# What each task serves from the model's output for one tokenized batch (a reranker's one
# logit per pair is its score).
_HEADS: Mapping[Task, Callable[[object, Mapping[str, torch.Tensor]], torch.Tensor]] = {
    Task.EMBEDDING: _pooled,
    Task.CLASSIFICATION: _logits,
    Task.RERANKING: _logits,
}


def split_pair(text: str) -> tuple[str, str]:
    """A reranker's "query<TAB>document" input as (query, document)."""
    query, separator, document = text.partition(PAIR_SEPARATOR)
    if not separator:
        raise ValueError(f"a reranker's input is query<TAB>document, not {text[:60]!r}")
    return query, document


def _text_arguments(texts: Sequence[str], task: Task) -> tuple[list[str], ...]:
    """The tokenizer's positional text arguments: the texts, or a reranker's two columns."""
    if task is not Task.RERANKING:
        return (list(texts),)
    pairs = [split_pair(text) for text in texts]
    return [q for q, _ in pairs], [d for _, d in pairs]


def run_model(
    model: nn.Module,
    tokenizer: object,
    texts: Sequence[str],
    task: Task,
    *,
    max_length: int = DEFAULT_MAX_LENGTH,
    batch_size: int = 32,
) -> np.ndarray:
    """What `task` serves for `texts` ([len(texts), width] float32), in batches."""
    head = _HEADS[task]
    device = next(model.parameters(), torch.empty(0)).device
    chunks = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(  # type: ignore[operator]
            *_text_arguments(texts[start : start + batch_size], task),
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        ).to(device)
        with torch.inference_mode():
            chunks.append(head(model(**batch), batch).cpu().numpy())
    return np.concatenate(chunks).astype(np.float32)

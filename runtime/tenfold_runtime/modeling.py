"""Loading a Hugging Face encoder and computing sentence embeddings in-process.

The generated Triton `model.py` repeats the pooling below (it runs where tenfold_runtime is
not installed); the e2e tests compare the two, so they cannot drift apart silently.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

# sentence-transformers checkpoints ship their own limit; plain ones fall back to this.
DEFAULT_MAX_LENGTH = 256


@dataclass
class LoadedModel:
    """An fp32 encoder, its tokenizer and the sequence length it was trained for."""

    model: nn.Module
    tokenizer: object
    max_length: int
    hidden_size: int


def max_sequence_length(model_dir: Path) -> int:
    """The sequence limit from sentence_bert_config.json, or DEFAULT_MAX_LENGTH."""
    config = model_dir / "sentence_bert_config.json"
    if config.is_file():
        return int(json.loads(config.read_text()).get("max_seq_length", DEFAULT_MAX_LENGTH))
    return DEFAULT_MAX_LENGTH


def load_encoder(model_dir: Path, device: str = "cpu") -> LoadedModel:
    """Load an fp32 encoder and tokenizer from a local folder, never touching the network."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModel, AutoTokenizer  # heavy: imported when needed

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir, dtype=torch.float32).eval().to(device)
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        max_length=max_sequence_length(model_dir),
        hidden_size=int(model.config.hidden_size),
    )


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
    device = next(model.parameters(), torch.empty(0)).device
    chunks = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(  # type: ignore[operator]
            list(texts[start : start + batch_size]),
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        ).to(device)
        with torch.inference_mode():
            hidden = model(**batch).last_hidden_state
        chunks.append(mean_pool(hidden, batch["attention_mask"]).cpu().numpy())
    return np.concatenate(chunks).astype(np.float32)

"""Small Hugging Face models built by the tests themselves, saved with save_pretrained.

They are loaded by the runtime's real code (AutoModel, AutoTokenizer), so a test checks what a
user's own model would go through, in seconds, and with a width other than MiniLM's 384.
"""

from __future__ import annotations

from pathlib import Path

import torch

from tenfold.api.prepare import PrepareSpec
from tenfold.api.spec import InferenceServiceSpec
from tenfold.plan.prepare_spec import build_prepare_spec

WORDS = "the a of to and in is it that for on with as was at by an be this are from or".split()


def save_small_bert(folder: Path, hidden_size: int) -> Path:
    """A two-layer BERT encoder `hidden_size` wide and its word-piece tokenizer in `folder`."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=5 + len(WORDS),
        hidden_size=hidden_size,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=2 * hidden_size,
        max_position_embeddings=128,
    )
    BertModel(config).eval().save_pretrained(folder)
    BertTokenizerFast(vocab_file=str(vocab)).save_pretrained(folder)
    return folder


def operator_prepare_spec(
    source: Path, backend: str, repository: Path, name: str = "small"
) -> PrepareSpec:
    """The prepare spec the operator writes for model `name` from `source` on `backend`, at
    fp32 with a short calibration (the width, not the guard, is under test)."""
    spec = InferenceServiceSpec.model_validate(
        {
            "model": {"name": name, "source": str(source)},
            "runtime": {"backend": backend},
            "quantization": {
                "precision": "fp32",
                "guard": {"calibrationSamples": 8, "fallback": []},
            },
        }
    )
    prepared = build_prepare_spec(name, spec)
    return prepared.model_copy(update={"repository": str(repository)})

"""Real English sentences for benchmarks and held-out checks: the Lee news corpus.

The Lee corpus (300 Australian news documents, Lee, Pincombe and Welsh 2005) ships inside
gensim's wheel as test data; only the file is read here, gensim itself is never imported
(importing it would pull scipy in for nothing). It is disjoint from the 64 built-in
calibration sentences of `tenfold_runtime.calibration`, so it can judge a model the guard
chose on those, and its sentence lengths are those of real text (median 22 words).
"""

from __future__ import annotations

import importlib.util
import re
from functools import cache
from pathlib import Path

LEE_FILE = "test/test_data/lee_background.cor"
# A sentence ends at . ! or ? followed by space and a capital or a quote.
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'])")
MIN_WORDS = 4


class CorpusMissingError(RuntimeError):
    """The package that ships the corpus is not installed."""


def corpus_path() -> Path:
    """Where gensim's wheel put the Lee corpus, without importing gensim."""
    spec = importlib.util.find_spec("gensim")
    if spec is None or not spec.submodule_search_locations:
        raise CorpusMissingError("the Lee corpus ships in gensim's wheel: install 'tenfold[dev]'")
    path = Path(next(iter(spec.submodule_search_locations))) / LEE_FILE
    if not path.is_file():
        raise CorpusMissingError(f"{path} is missing from the installed gensim")
    return path


def split_sentences(document: str) -> list[str]:
    """A document's sentences of at least MIN_WORDS words, in order."""
    parts = (part.strip() for part in SENTENCE_END.split(document))
    return [part for part in parts if len(part.split()) >= MIN_WORDS]


@cache
def lee_sentences() -> tuple[str, ...]:
    """Every sentence of the Lee background corpus (2,530), in corpus order, no duplicates."""
    text = corpus_path().read_text(encoding="latin-1")
    seen: dict[str, None] = {}
    for line in text.splitlines():
        for sentence in split_sentences(line):
            seen.setdefault(sentence, None)
    return tuple(seen)

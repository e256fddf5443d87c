"""The input checks of every door that takes text, written once: the pipeline, the three predictors, the command line
and the Space all call these, so the same bad input gets the same words everywhere.

Standard library only: the CRF model's pipeline (``pipeline_bert_crf.py``) imports it, so ``save_pretrained`` copies
it next to the weights.

The rules:

- **One text** must be a ``str``. Anything else raises ``TypeError`` naming the argument and the type received
  (``"question must be a str, got NoneType"``; bytes get a hint to decode them).
- **Several texts**: a list, tuple or any other iterable of ``str`` (a ``datasets`` column, a generator; an item that
  is not a ``str`` names its position: ``"text 1 must be a str, got int"``), or a single ``str``, which is one text,
  never a sequence of characters. Bytes and mappings are refused, not iterated.
- **Valid Unicode.** A ``str`` holding a lone surrogate (U+D800..U+DFFF, left by ``errors="surrogateescape"``
  decoding or by JSON with an unpaired ``\\ud83d`` escape) cannot be encoded and would fail deep inside the
  tokenizer: it raises ``ValueError`` naming the text and the character position.
- **Texts without tokens** (empty, blank, or only characters the tokenizer deletes, such as U+FFFD): each task says
  what it does with them (``texts_without_tokens`` finds them). NER gives no entities, classification gives no
  prediction (``None``), QA refuses an empty question or context.
"""

from collections.abc import Iterable, Mapping, Sequence


def check_text(text, name: str = "text") -> str:
    """`text` itself if it is a `str` of valid Unicode; `TypeError` naming `name` and the type received, or
    `ValueError` naming the position of a lone surrogate."""
    if not isinstance(text, str):
        hint = " (decode bytes first, e.g. text.decode('utf-8'))" if isinstance(text, (bytes, bytearray)) else ""
        raise TypeError(f"{name} must be a str, got {type(text).__name__}{hint}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(f"{name} is not valid Unicode: a lone surrogate U+{ord(text[error.start]):04X} at character "
                         f"{error.start} (text decoded with errors='surrogateescape', or JSON with an unpaired "
                         "\\ud800-\\udfff escape); decode it with errors='replace' or fix the source") from None
    return text


def check_texts(texts, name: str = "texts", item: str = "text") -> tuple[list[str], bool]:
    """`([texts], True)` for one `str`, `(list(texts), False)` for an iterable of `str`, each checked by `check_text`
    (named `"{item} {i}"`); else `TypeError` naming `name` and the type received."""
    if isinstance(texts, str):
        return [check_text(texts, item)], True
    if isinstance(texts, (bytes, bytearray, Mapping)) or not isinstance(texts, Iterable):
        hint = " (decode bytes first)" if isinstance(texts, (bytes, bytearray)) else ""
        raise TypeError(f"{name} must be a str or a list of str, got {type(texts).__name__}{hint}")
    return [check_text(text, f"{item} {i}") for i, text in enumerate(texts)], False


def texts_without_tokens(tokenizer, texts: Sequence[str]) -> list[int]:
    """Positions of the `texts` in which `tokenizer` finds no token (special tokens aside): empty or blank texts, and
    texts of characters it deletes (BERT's normaliser drops U+FFFD, control and private-use characters)."""
    # A letter or digit always makes a token (an unknown one at worst): only texts without any are tokenized.
    suspects = [i for i, text in enumerate(texts) if not any(c.isalnum() for c in text)]
    if not suspects:
        return []
    ids = tokenizer([texts[i] for i in suspects], add_special_tokens=False)["input_ids"]
    return [i for i, row in zip(suspects, ids) if not row]


__all__ = ["check_text", "check_texts", "texts_without_tokens"]

"""What `save_pretrained` copies next to the weights must run where this package is not installed: every copied file
imports only torch, transformers, numpy (a hard requirement of transformers, so present wherever the model can load),
the standard library and its siblings (relative imports of one dot)."""

import ast
import sys

from conftest import tiny_bert_config
from hf_bert_tasks import BertCrfConfig, BertCrfForTokenClassification

ALLOWED_ROOTS = {"torch", "transformers", "numpy", "__future__"} | set(sys.stdlib_module_names)


def imports_of(source: str) -> list[tuple[int, str]]:
    """(level, module) of every import statement, nested ones (inside functions) included."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(0, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.level, node.module or ""))
    return found


def test_every_copied_file_imports_only_torch_transformers_stdlib_and_siblings(tmp_path):
    labels = ["O", "B-PER", "I-PER"]
    config = BertCrfConfig(encoder=tiny_bert_config(), id2label=dict(enumerate(labels)),
                           label2id={label: i for i, label in enumerate(labels)})
    BertCrfForTokenClassification(config).save_pretrained(tmp_path)
    copied = sorted(path for path in tmp_path.glob("*.py"))
    names = {path.stem for path in copied}
    assert {"configuration_bert_crf", "modeling_bert_crf", "crf"} <= names
    for path in copied:
        for level, module in imports_of(path.read_text(encoding="utf-8")):
            if level == 0:
                assert module.split(".")[0] in ALLOWED_ROOTS, f"{path.name} imports {module}"
            else:
                # `from .sibling import x`: one dot, and the sibling was copied too.
                assert level == 1 and module in names, f"{path.name}: from {'.' * level}{module} import ..."


def test_the_import_check_rejects_what_would_break_remote_loading():
    """The checker itself: the imports that fail on a machine without the package are flagged."""
    assert imports_of("from hf_bert_tasks.ner import data") == [(0, "hf_bert_tasks.ner")]
    assert imports_of("from ..files import read_lines") == [(2, "files")]
    assert imports_of("def f():\n    import scipy\n") == [(0, "scipy")]
    assert "scipy" not in ALLOWED_ROOTS and "hf_bert_tasks" not in ALLOWED_ROOTS

"""Peak memory of one long text through the CRF pipeline (`pipeline_bert_crf.py`, what `NerPredictor` and
`pipeline(..., trust_remote_code=True)` run): a tiny random BERT+CRF (2 layers, hidden 32, so the model's own memory
is small and what is measured is the pipeline's), the MiniLM tokenizer, and one text of `--megabytes` MB of English
words (the CoNLL-2003 dev sentences, repeated).

Each measurement runs in a fresh process: the model is loaded and warmed up on a short text, then the long text is
tagged once. Reported: the growth of the process's peak resident memory (`ru_maxrss`) over the warmed-up process,
the peak of Python's own allocations during the call (`tracemalloc`: the words, features and per-window objects
the pipeline holds; torch's tensors are allocated outside Python's allocator and show only in `ru_maxrss`), the wall
time, the text's words and windows.

    python benchmarks/pipeline_memory.py                 # 2 MB, writes benchmarks/results/pipeline_memory.json
    python benchmarks/pipeline_memory.py --smoke         # 0.1 MB
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import common

MEASURE = r"""
import json, resource, sys, time, tracemalloc
from transformers import pipeline
folder, text_file, with_tracemalloc = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
text = open(text_file, encoding="utf-8").read()
ner = pipeline("token-classification", model=folder, trust_remote_code=True, aggregation_strategy="simple",
               device="cpu", batch_size=32)
ner("John Smith visited Paris on Monday.")  # warm-up: every lazy import and allocation of a short text
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if with_tracemalloc:
    tracemalloc.start()
start = time.perf_counter()
entities = ner(text)
seconds = time.perf_counter() - start
python_peak = tracemalloc.get_traced_memory()[1] if with_tracemalloc else None
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"rss_before_mb": before / 1024, "rss_peak_mb": after / 1024,
                  "rss_growth_mb": (after - before) / 1024,
                  "python_peak_mb": None if python_peak is None else python_peak / 2**20,
                  "seconds": seconds, "entities": len(entities)}))
"""


def parse_arguments(argv=None):
    parser = common.parser(__doc__, "pipeline_memory")
    parser.add_argument("--megabytes", type=float, default=2.0, help="size of the text in MB of UTF-8")
    parser.add_argument("--dev_file", type=Path, default=common.data_path("conll2003", "eng.testa"),
                        help="CoNLL file whose sentences make the text")
    args = common.parse(parser, argv)
    if args.smoke:
        args.megabytes = min(args.megabytes, 0.1)
    return args


def tiny_model(folder: Path, seed: int) -> Path:
    import torch
    from transformers import AutoTokenizer, BertConfig

    from hf_bert_tasks import BertCrfConfig, BertCrfForTokenClassification
    from hf_bert_tasks.modeling.tagging import label_list

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(common.minilm_path())
    labels = label_list("BIO", ["LOC", "MISC", "ORG", "PER"])
    encoder = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64)
    config = BertCrfConfig(encoder=encoder, id2label=dict(enumerate(labels)),
                           label2id={label: i for i, label in enumerate(labels)})
    BertCrfForTokenClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def long_text(dev_file: Path, megabytes: float) -> str:
    common.require(dev_file)
    sentences, words = [], []
    for line in dev_file.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("-DOCSTART-"):
            words.append(line.split()[0])
        elif words:
            sentences.append(" ".join(words))
            words = []
    text, size, i = [], 0, 0
    while size < megabytes * 1e6:
        text.append(sentences[i % len(sentences)])
        size += len(text[-1].encode("utf-8")) + 1
        i += 1
    return " ".join(text)


def main(argv=None):
    args = parse_arguments(argv)
    with tempfile.TemporaryDirectory() as work:
        folder = tiny_model(Path(work) / "model", args.seed)
        text = long_text(args.dev_file, args.megabytes)
        text_file = Path(work) / "text.txt"
        text_file.write_text(text, encoding="utf-8")
        runs = {}
        for name, flag in (("rss", "0"), ("tracemalloc", "1")):
            result = subprocess.run([sys.executable, "-c", MEASURE, str(folder), str(text_file), flag],
                                    capture_output=True, text=True, check=False)
            if result.returncode:
                sys.exit(result.stderr[-3000:])
            runs[name] = json.loads(result.stdout.strip().splitlines()[-1])
    results = {"text_megabytes": len(text.encode("utf-8")) / 1e6, "characters": len(text),
               "rss_growth_mb": runs["rss"]["rss_growth_mb"], "rss_peak_mb": runs["rss"]["rss_peak_mb"],
               "rss_before_mb": runs["rss"]["rss_before_mb"], "seconds": runs["rss"]["seconds"],
               "python_peak_mb": runs["tracemalloc"]["python_peak_mb"], "entities": runs["rss"]["entities"]}
    print(json.dumps(results, indent=1))
    common.write_json(args.output, {"settings": vars(args), "machine": common.machine_info(), "results": results})


if __name__ == "__main__":
    main()

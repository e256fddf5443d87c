"""Start-up time: `import hf_bert_tasks`, first use of the model, and every command line's `--help`, against
`import torch` and a bare interpreter measured in the same rounds.

Each command runs in a fresh interpreter, `--repeats` times; the commands take turns (one round runs each once), so
a change of machine load touches all of them alike. Reported per command: the median wall time and the median CPU
time (user + system of the child, which depends less on other work on the machine than wall time does), in
seconds. The recipes build their parser from transformers' `TrainingArguments`, whose import alone loads torch, the
Trainer's utilities and peft: its time is listed as the floor of rendering a recipe's `--help`. A recipe renders its
help once and then reads it from a cache (hf_bert_tasks/help_cache.py): every round gives each checkout an empty
HF_HOME, so each recipe's `--help` is timed rendering ("first") and then from the cache ("again").

`--baseline DIR` times the same commands in another checkout too (e.g. `git worktree add DIR COMMIT` of the commit
before a change), in the same rounds.

    python benchmarks/startup.py                          # 5 rounds -> benchmarks/results/startup.json
    python benchmarks/startup.py --baseline /tmp/before   # and the checkout in /tmp/before, turn about
    python benchmarks/startup.py --smoke                  # 1 round
"""

import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common

PYTHON = sys.executable
COMMANDS = {
    "python (bare interpreter)": ["-c", "pass"],
    "import torch (reference)": ["-c", "import torch"],
    "import hf_bert_tasks": ["-c", "import hf_bert_tasks"],
    "hf_bert_tasks.BertCrfForTokenClassification (first use: model + registration)":
        ["-c", "import hf_bert_tasks; hf_bert_tasks.BertCrfForTokenClassification"],
    "python -m hf_bert_tasks.predictor --help": ["-m", "hf_bert_tasks.predictor", "--help"],
    "python -m hf_bert_tasks.export --help": ["-m", "hf_bert_tasks.export", "--help"],
    "python -m hf_bert_tasks.hub --help": ["-m", "hf_bert_tasks.hub", "--help"],
    "python -m hf_bert_tasks.vocab --help": ["-m", "hf_bert_tasks.vocab", "--help"],
    "from transformers import TrainingArguments (floor of a recipe's --help)":
        ["-c", "from transformers import TrainingArguments"],
    **{f"python recipes/{name}.py --help ({run})": [f"recipes/{name}.py", "--help"]
       for name in ("ner", "classify", "qa", "pretrain", "distill") for run in ("first", "again")},
}


def run_once(arguments: list[str], root: Path, hf_home: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child) of one `python ARGUMENTS` in the checkout `root` (its package first
    on the path), with HF_HOME at `hf_home`."""
    environment = {**os.environ, "HF_HOME": hf_home,
                   "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([PYTHON, *arguments], cwd=root, env=environment, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"python {' '.join(arguments)} failed in {root}:\n{done.stderr[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = common.parser(__doc__, "startup")
    parser.add_argument("--repeats", type=int, default=5, help="rounds (every command once per round)")
    parser.add_argument("--baseline", type=Path, default=None, help="another checkout to time the same way")
    args = common.parse(parser)
    if args.smoke:
        args.repeats = 1
    checkouts = {"this checkout": common.ROOT} | ({"baseline": args.baseline.resolve()} if args.baseline else {})
    load_before = list(os.getloadavg())
    timings = {(checkout, name): [] for checkout in checkouts for name in COMMANDS}
    for _ in range(args.repeats):
        homes = {checkout: tempfile.mkdtemp(prefix="startup_hf_home_") for checkout in checkouts}
        for name, arguments in COMMANDS.items():
            for checkout, root in checkouts.items():
                timings[checkout, name].append(run_once(arguments, root, homes[checkout]))
        for home in homes.values():
            shutil.rmtree(home)
    load_after = list(os.getloadavg())

    results = {checkout: {} for checkout in checkouts}
    for (checkout, name), runs in timings.items():
        results[checkout][name] = {"wall_s": statistics.median(w for w, _ in runs),
                                   "cpu_s": statistics.median(c for _, c in runs),
                                   "runs": [{"wall_s": w, "cpu_s": c} for w, c in runs]}
    width = max(map(len, COMMANDS))
    print(f"median of {args.repeats}, seconds; load average {load_before[0]:.1f} before, {load_after[0]:.1f} after")
    print(f"{'command':{width}}" + "".join(f"  {checkout[:13]:>13} wall  CPU" for checkout in checkouts))
    for name in COMMANDS:
        print(f"{name:{width}}" + "".join(f"  {results[c][name]['wall_s']:18.2f} {results[c][name]['cpu_s']:4.2f}"
                                          for c in checkouts))
    common.write_json(args.output, {"settings": vars(args), "checkouts": {k: str(v) for k, v in checkouts.items()},
                                    "machine": common.machine_info(), "load_average_before": load_before,
                                    "load_average_after": load_after, "results": results})


if __name__ == "__main__":
    main()

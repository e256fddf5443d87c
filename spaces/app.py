"""The demo Space: whichever model it is pointed at, NER, text classification or extractive QA, on one page.

Decisions:

- **The model decides the page.** `MODEL_ID` (a Space variable: a Hub id, or a local folder written by one of the
  recipes), else `DEFAULT_MODEL_ID`. Its `config.json` says the task (`hf_bert_tasks.predictor.auto.task_of`, the rule
  `python -m hf_bert_tasks.predictor` uses): a token classifier (the CRF model, or a softmax head) gets the entity
  page, a sequence classifier the label page, a question-answering model the question page. One Space demonstrates
  one model; point it at another model (of any of the three kinds) and it restarts as that model's demo.
- **One prediction path per task.** The pages call the package's predictors, the code behind the recipes'
  predictions and `python -m hf_bert_tasks.predictor`, so what the Space shows is what users of the package get:
  `ner.predictor.NerPredictor` (words split the same way, windows over long text, CRF decoding, scores),
  `classification.predictor.TextClassifier` (long text as the model was trained: truncation, head + tail or
  windows whose logits are averaged, from the model's config; a model trained on sentence pairs gets a second text
  box, and a pair is cut by the rule of training), `qa.predictor.QuestionAnswerer` (windows over long
  contexts, the exact n-best search, the no-answer threshold of a 2.0-style model). `push_space` uploads those
  modules beside this file, so the Space's `requirements.txt` lists only their dependencies.
- **The model loads once**, at start-up, and is shared by all requests (inference only reads it), in the weights'
  type of the Space variable `DTYPE` (`float32`, `bfloat16`, `float16`; default: as saved; a CRF's or span head's
  own weights stay float32).
- **A model that cannot load does not take the Space down.** The app starts anyway, shows a banner that says which
  model failed and why, and answers every submit with the same message; the traceback goes to the Space's log. A
  typo in a Space variable should explain itself on the page, not crash-loop the container. When not even the
  config can be read the task is unknown, and the page is the entity page (the project's own kind of model).
- **Bad input is answered in the status line**, not with an exception: empty text (question or context), text the
  predictors refuse (their shared checks, `modeling/texts.py`: not valid Unicode; a question or context without a
  token), a text without a token for a classifier (no prediction), and text
  over `MAX_INPUT_CHARS` characters (default 20,000; a Space variable too). The predictors handle any length
  (windows); the cap bounds the CPU time one visitor can take on a shared Space.
- **Load limits.** `queue(default_concurrency_limit=2, max_size=32)`: two predictions at a time (a free CPU Space
  has two vCPUs), at most 32 waiting; beyond that Gradio tells the visitor the queue is full. Torch's threads are
  the usable cores divided by those two (the Space variable `THREADS` overrides), so that two predictions at once do
  not oversubscribe the cores the way two processes with every core each do (benchmarks/README.md, "Threads").
- **Highlights use character offsets**, so the highlighted text is the input exactly as typed: entities labelled
  `TYPE score` (all labels of one type share the type's colour; the colour map is fixed when the app is built, every
  `TYPE 0.00` ... `TYPE 1.00` label, so the endpoint returns plain values), the answer labelled `answer score` in
  its context. Classification shows every label's probability (`gr.Label`; for a multi-label model the status line
  lists the labels over the threshold).
- **No data leaves or stays.** `GRADIO_ANALYTICS_ENABLED=False` stops Gradio's own calls home. A `gr.Blocks` app has
  no Flag button (flagging belongs to `gr.Interface`), so no visitor text is stored.
- **Host and port.** `HOST`/`PORT` when set; otherwise Gradio's own `GRADIO_SERVER_NAME`/`GRADIO_SERVER_PORT`,
  which Spaces set, and 127.0.0.1:7860 on a laptop.

The endpoints (for `gradio_client`): `/tag_entities` (text -> highlight, table, status), `/classify` (text ->
probabilities, status; a model trained on sentence pairs takes text, second text), `/answer` (question, context ->
highlight, answer, status).
"""

import logging
import os
import time
from pathlib import Path
from typing import NamedTuple

# Before gradio is imported: it reads these at import time.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import gradio as gr  # noqa: E402

from hf_bert_tasks.classification.predictor import TextClassifier  # noqa: E402
from hf_bert_tasks.ner.predictor import NerPredictor  # noqa: E402
from hf_bert_tasks.modeling.tagging import split_tag  # noqa: E402
from hf_bert_tasks.progress import quiet_short_bars  # noqa: E402
from hf_bert_tasks.modeling.threads import share_threads, whole_number_variable  # noqa: E402
from hf_bert_tasks.predictor.auto import predictor_class, task_of  # noqa: E402
from hf_bert_tasks.qa.predictor import QuestionAnswerer  # noqa: E402

logger = logging.getLogger("hf_bert_tasks.demo")

DEFAULT_MODEL_ID = "hf-bert-tasks/bert-crf-ner"
DEFAULT_MAX_INPUT_CHARS = 20_000
CONCURRENT_PREDICTIONS = 2  # a free CPU Space has two vCPUs; each prediction gets its share of torch's threads
TITLES = {"ner": "Named-entity recognition", "classification": "Text classification",
          "qa": "Extractive question answering"}
RECIPES = {"ner": "recipes/ner.py", "classification": "recipes/classify.py", "qa": "recipes/qa.py"}
CHINESE_EXAMPLE = "明朝建立于1368年，开国皇帝是朱元璋。"
ENGLISH_EXAMPLE = "Angela Weber, chief executive of Northwind Bank, flew from Dublin to Toronto on Monday."
EXAMPLES = {
    "ner": [CHINESE_EXAMPLE, ENGLISH_EXAMPLE],
    "classification": ["The team won the cup final on Monday.", CHINESE_EXAMPLE],
    "sentence_pairs": [["The team won the cup final on Monday.", "On Monday the team won the final."]],
    "qa": [["Who flew to Toronto?", ENGLISH_EXAMPLE], ["开国皇帝是谁？", CHINESE_EXAMPLE]],
}
TABLE_HEADERS = ["type", "text", "start", "end", "score"]
# Light colours, so that the text on them stays readable in the light and the dark theme.
PALETTE = ["#fca5a5", "#93c5fd", "#86efac", "#fcd34d", "#c4b5fd", "#f9a8d4", "#5eead4", "#fdba74"]


def max_input_chars() -> int:
    """`MAX_INPUT_CHARS` from the environment (a positive integer), else `DEFAULT_MAX_INPUT_CHARS`."""
    value = os.environ.get("MAX_INPUT_CHARS", "").strip()
    if not value:
        return DEFAULT_MAX_INPUT_CHARS
    try:
        limit = int(value.replace("_", "").replace(",", ""))
    except ValueError:
        raise ValueError(f"MAX_INPUT_CHARS={value!r} is not an integer") from None
    if limit <= 0:
        raise ValueError(f"MAX_INPUT_CHARS={value!r} must be positive")
    return limit


class LoadedModel(NamedTuple):
    """What `load_model` found: the task, its predictor (None when loading failed) and why it failed."""

    task: str
    predictor: object | None
    error: str | None


def load_model(model_id: str) -> LoadedModel:
    """The task of `model_id` (from its config) and its predictor, or the task (`"ner"` when not even the config
    loads), None and a one-paragraph message saying why the model could not be loaded."""
    from transformers import AutoConfig

    task = "ner"
    try:
        # A missing folder would otherwise be reported as a malformed Hub id.
        if model_id.startswith(("/", ".", "~")) and not Path(model_id).expanduser().is_dir():
            raise FileNotFoundError(f"there is no folder {Path(model_id).expanduser()}")
        task = task_of(AutoConfig.from_pretrained(model_id, trust_remote_code=True))
        dtype = os.environ.get("DTYPE", "").strip() or None  # e.g. bfloat16; a wrong name is reported like any failure
        return LoadedModel(task, predictor_class(task).from_pretrained(model_id, dtype=dtype), None)
    except Exception as error:  # any failure (no such folder or id, no network, broken files) must leave the app up
        logger.exception("could not load the model %r", model_id)
        lines = str(error).strip().splitlines()
        reason = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
        return LoadedModel(task, None, (
            f"**The model `{model_id}` could not be loaded.** {reason}\n\n"
            "Set the Space variable `MODEL_ID` to a Hub model id or a folder saved by `recipes/ner.py`, "
            "`recipes/classify.py` or `recipes/qa.py`."
        ))


def input_problem(text: str | None, limit: int, empty: str, what: str = "text") -> str | None:
    """Why `text` cannot be used (`empty` when it is blank, or it is longer than `limit` characters), else None."""
    if text is None or not text.strip():
        return empty
    if len(text) > limit:
        return (f"The {what} is {len(text):,} characters long; this demo takes at most {limit:,}. "
                "Shorten it, or run the package's predictor yourself (`python -m hf_bert_tasks.predictor`): it "
                "takes text of any length.")
    return None


# --- named entities --------------------------------------------------------------------------------------------------
def entity_label(entity: dict) -> str:
    """The label shown on a highlighted entity: `"PER 0.98"`."""
    return f"{entity['type']} {entity['score']:.2f}"


def label_colours(predictor: NerPredictor) -> dict[str, str]:
    """The colour of every label `entity_label` can produce for the model: one colour per entity type (types in
    sorted order, the palette reused cyclically), the same for every score."""
    labels = predictor.id2label.values()  # a span model's labels are the types themselves
    types = sorted(set(labels) if predictor.spans else {split_tag(label)[1] for label in labels} - {None})
    return {
        entity_label({"type": entity_type, "score": hundredths / 100}): PALETTE[i % len(PALETTE)]
        for i, entity_type in enumerate(types)
        for hundredths in range(101)
    }


def enclosing(index: int, entities: list[dict]) -> dict | None:
    """The smallest entity other than `entities[index]` whose span holds it (one of the same span holds it when it
    comes first); None for an outermost entity."""
    start, end = entities[index]["start"], entities[index]["end"]
    holders = [other for j, other in enumerate(entities) if j != index and other["start"] <= start
               and end <= other["end"] and (other["end"] - other["start"] > end - start or j < index)]
    return min(holders, key=lambda other: other["end"] - other["start"], default=None)


def tag_entities(predictor: NerPredictor, text: str, limit: int):
    """Entities of `text`: (highlighted text, table rows, status line).

    A span model's entities may nest: the highlight (which cannot draw one span inside another) shows the outermost
    ones, and the table lists every entity with the one it sits inside (`inside`, empty for an outermost one)."""
    problem = input_problem(text, limit, "Enter some text to tag (the box is empty).")
    if problem is not None:
        return None, [], problem
    began = time.perf_counter()
    try:
        entities = predictor(text)
    except ValueError as error:  # the predictors' input checks (modeling/texts.py): e.g. not valid Unicode
        return None, [], f"{error}."
    seconds = time.perf_counter() - began
    holders = [enclosing(i, entities) if predictor.spans else None for i in range(len(entities))]
    highlighted = {
        "text": text,
        "entities": [{"entity": entity_label(e), "start": e["start"], "end": e["end"]}
                     for e, holder in zip(entities, holders) if holder is None],
    }
    rows = [[e["type"], e["text"], e["start"], e["end"], round(e["score"], 4)] for e in entities]
    if predictor.spans:
        rows = [row + [f"{h['type']} {h['text']!r} [{h['start']}:{h['end']}]" if h else ""]
                for row, h in zip(rows, holders)]
    found = f"{len(entities)} entit{'y' if len(entities) == 1 else 'ies'}"
    nested = sum(h is not None for h in holders)
    if nested:
        found += f", {nested} of them inside another (highlighted: the outermost; the table's 'inside' column)"
    return highlighted, rows, f"Found {found} in {len(text):,} characters ({seconds:.2f} s)."


def build_ner_page(model_id: str, loaded: LoadedModel, limit: int) -> None:
    predictor = loaded.predictor
    gr.Markdown(
        f"Model: `{model_id}`. Paste Chinese or English text, up to {limit:,} characters; long texts are tagged "
        "in overlapping windows. Each entity is shown with its type and score (the mean probability of its tags: "
        "CRF marginals, or softmax for a softmax head)."
    )
    text = gr.Textbox(
        label="Text", lines=6, max_lines=20, elem_id="ner-text",
        placeholder="明朝建立于1368年，开国皇帝是朱元璋。 / Angela Weber flew from Dublin to Toronto on Monday.",
    )
    submit = gr.Button("Find entities", variant="primary", elem_id="ner-submit")
    status = gr.Markdown(elem_id="ner-status")
    highlight = gr.HighlightedText(
        label="Entities", show_legend=False, elem_id="ner-highlight",
        color_map=label_colours(predictor) if predictor is not None else None,
    )
    spans = predictor is not None and predictor.spans
    table = gr.Dataframe(
        headers=TABLE_HEADERS + ["inside"] * spans, datatype=["str", "str", "number", "number", "number"]
        + ["str"] * spans, interactive=False,
        label="Entities (character offsets: text[start:end])", elem_id="ner-table",
    )

    def tag(text: str):
        if loaded.error:
            return None, [], loaded.error
        return tag_entities(predictor, text, limit)

    outputs = [highlight, table, status]
    submit.click(tag, inputs=text, outputs=outputs, api_name="tag_entities")
    # Not cached: caching would run the model at start-up (on Spaces by default), before anyone asks.
    gr.Examples(examples=[[example] for example in EXAMPLES["ner"]], inputs=text, outputs=outputs, fn=tag,
                run_on_click=True, cache_examples=False, elem_id="ner-examples")


# --- text classification ---------------------------------------------------------------------------------------------
def long_text_note(classifier: TextClassifier) -> str:
    """How the model reads text longer than its window, in words (the settings it was trained with)."""
    window = f"{classifier.max_length}-token"
    if classifier.long_text == "windows":
        return (f"Longer texts are read in overlapping {window} windows (stride {classifier.stride}) whose logits "
                "are averaged, as the model was trained.")
    if classifier.long_text == "head_tail":
        return (f"Longer texts are cut to their first {classifier.head_tokens} and last tokens of one {window} "
                "input, as the model was trained.")
    return f"Longer texts are truncated to one {window} input, as the model was trained."


def classify_text(classifier: TextClassifier, text: str, limit: int, text_pair: str | None = None):
    """The classifier's record for `text` (and `text_pair`, for a model trained on sentence pairs) as
    (label -> probability, status line)."""
    problem = input_problem(text, limit, "Enter some text to classify (the box is empty).")
    if problem is None and classifier.sentence_pairs:
        problem = input_problem(text_pair, limit, "Enter the second text of the pair (the box is empty).",
                                "second text")
    if problem is not None:
        return None, problem
    text_pair = text_pair if classifier.sentence_pairs else None
    began = time.perf_counter()
    try:
        record = classifier(text, text_pair)
    except ValueError as error:
        return None, f"{error}."
    seconds = time.perf_counter() - began
    if record is None:
        return None, ("No prediction: the text has no token the model can read (only characters its tokenizer "
                      "deletes, such as U+FFFD).")
    if classifier.multi_label:
        chosen = ", ".join(f"{label} ({score:.2f})" for label, score in zip(record["label"], record["score"]))
        decision = (f"Labels: {chosen}" if chosen else "No label") + f" (threshold {classifier.threshold:g})"
    else:
        decision = f"Label: {record['label']} ({record['score']:.2f})"
    size = f"{len(text):,}" + (f" + {len(text_pair):,}" if text_pair is not None else "")
    return record["probabilities"], f"{decision}; {size} characters ({seconds:.2f} s)."


def build_classification_page(model_id: str, loaded: LoadedModel, limit: int) -> None:
    classifier = loaded.predictor
    pairs = classifier is not None and classifier.sentence_pairs
    about = ""
    if classifier is not None:
        kind = "multi-label (independent probabilities)" if classifier.multi_label else "one label per text"
        about = f" Labels: {', '.join(classifier.labels)}; {kind}. {long_text_note(classifier)}"
    if pairs:
        about += (" The model reads sentence pairs: a pair longer than the window loses tokens from the end of the "
                  "longer text, as in training.")
    gr.Markdown(f"Model: `{model_id}`. Paste text, up to {limit:,} characters.{about}")
    text = gr.Textbox(label="First text" if pairs else "Text", lines=6, max_lines=20, elem_id="cls-text",
                      placeholder="The team won the cup final on Monday.")
    inputs = [text]
    if pairs:
        inputs.append(gr.Textbox(label="Second text", lines=3, max_lines=20, elem_id="cls-pair",
                                 placeholder="On Monday the team won the final."))
    submit = gr.Button("Classify", variant="primary", elem_id="cls-submit")
    status = gr.Markdown(elem_id="cls-status")
    label = gr.Label(label="Probabilities", elem_id="cls-label")

    def classify(text: str, text_pair: str | None = None):
        if loaded.error:
            return None, loaded.error
        return classify_text(classifier, text, limit, text_pair)

    outputs = [label, status]
    submit.click(classify, inputs=inputs, outputs=outputs, api_name="classify")
    examples = EXAMPLES["sentence_pairs"] if pairs else [[example] for example in EXAMPLES["classification"]]
    gr.Examples(examples=examples, inputs=inputs, outputs=outputs, fn=classify, run_on_click=True,
                cache_examples=False, elem_id="cls-examples")


# --- question answering ----------------------------------------------------------------------------------------------
def answer_question(answerer: QuestionAnswerer, question: str, context: str, limit: int):
    """The model's answer to `question` from `context`: (the context with the answer highlighted, the answer, status
    line)."""
    problem = (input_problem(question, limit, "Enter a question (the box is empty).", "question")
               or input_problem(context, limit, "Enter the context to answer from (the box is empty).", "context"))
    if problem is not None:
        return None, "", problem
    began = time.perf_counter()
    try:
        result = answerer(question, context)
    except ValueError as error:  # e.g. a question of characters the tokenizer deletes: refused, as an empty one
        return None, "", f"{error}."
    seconds = time.perf_counter() - began
    timing = f"{len(context):,} characters of context ({seconds:.2f} s)"
    if result["start"] is None:  # a 2.0-style model abstains
        return ({"text": context, "entities": []}, "",
                f"No answer in the context (probability {result['score']:.2f}); {timing}.")
    highlighted = {"text": context, "entities": [
        {"entity": f"answer {result['score']:.2f}", "start": result["start"], "end": result["end"]}]}
    return highlighted, result["answer"], (
        f"Answer at characters {result['start']:,}-{result['end']:,} (score {result['score']:.2f}); {timing}.")


def build_qa_page(model_id: str, loaded: LoadedModel, limit: int) -> None:
    gr.Markdown(
        f"Model: `{model_id}`. Ask a question about a context (up to {limit:,} characters each); the answer is a "
        "span of the context, highlighted with its score (its probability among the model's best spans). Long "
        "contexts are read in overlapping windows."
    )
    question = gr.Textbox(label="Question", lines=1, elem_id="qa-question", placeholder="Who flew to Toronto?")
    context = gr.Textbox(label="Context", lines=6, max_lines=20, elem_id="qa-context",
                         placeholder="Angela Weber flew from Dublin to Toronto on Monday.")
    submit = gr.Button("Answer", variant="primary", elem_id="qa-submit")
    status = gr.Markdown(elem_id="qa-status")
    answer = gr.Textbox(label="Answer", interactive=False, elem_id="qa-answer")
    highlight = gr.HighlightedText(label="Answer in its context", show_legend=False, elem_id="qa-highlight",
                                   color_map={f"answer {h / 100:.2f}": PALETTE[3] for h in range(101)})

    def ask(question: str, context: str):
        if loaded.error:
            return None, "", loaded.error
        return answer_question(loaded.predictor, question, context, limit)

    outputs = [highlight, answer, status]
    submit.click(ask, inputs=[question, context], outputs=outputs, api_name="answer")
    gr.Examples(examples=EXAMPLES["qa"], inputs=[question, context], outputs=outputs, fn=ask, run_on_click=True,
                cache_examples=False, elem_id="qa-examples")


PAGES = {"ner": build_ner_page, "classification": build_classification_page, "qa": build_qa_page}


def build_demo(model_id: str | None = None) -> gr.Blocks:
    """The whole app, queued, for `model_id` (default: `MODEL_ID`, else `DEFAULT_MODEL_ID`): the page of its task."""
    model_id = model_id or os.environ.get("MODEL_ID") or DEFAULT_MODEL_ID
    limit = max_input_chars()
    loaded = load_model(model_id)
    with gr.Blocks(title=TITLES[loaded.task], analytics_enabled=False) as demo:
        gr.Markdown(f"# {TITLES[loaded.task]}")
        gr.Markdown(loaded.error or "", visible=loaded.error is not None, elem_id="model-error")
        PAGES[loaded.task](model_id, loaded, limit)
    return demo.queue(default_concurrency_limit=CONCURRENT_PREDICTIONS, max_size=32)


def space_threads() -> int:
    """Torch's threads for the Space's process: `THREADS` (a positive integer), else the usable cores divided among
    the `CONCURRENT_PREDICTIONS` that run at once."""
    return share_threads(whole_number_variable("THREADS", "the Space"), workers=CONCURRENT_PREDICTIONS)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    quiet_short_bars()  # no "Loading weights" bar for each model the Space loads
    space_threads()
    port = os.environ.get("PORT")
    # None defers to Gradio: GRADIO_SERVER_NAME/GRADIO_SERVER_PORT (set on Spaces), else 127.0.0.1:7860.
    build_demo().launch(server_name=os.environ.get("HOST") or None, server_port=int(port) if port else None)

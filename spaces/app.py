"""The demo Space: paste text, see the named entities a BERT+CRF model finds in it.

Decisions:

- **One prediction path.** The demo calls `hf_bert_tasks.ner.predictor.NerPredictor`, the code behind the recipe's
  predictions and `python -m hf_bert_tasks.predictor`, so what the Space shows is what users of the package get
  (words split the same way, windows over long text, CRF decoding, scores). The Space's `requirements.txt`
  therefore installs the `hf_bert_tasks` package (which brings torch and transformers) instead of a second copy of
  the prediction code.
- **Which model.** `MODEL_ID` (a Space variable: a Hub id, or a local folder written by `recipes/ner.py`), else
  `DEFAULT_MODEL_ID`. It loads once, at start-up, and is shared by all requests (inference only reads it).
- **A model that cannot load does not take the Space down.** The app starts anyway, shows a banner that says which
  model failed and why, and answers every submit with the same message; the traceback goes to the Space's log.
  A typo in a Space variable should explain itself on the page, not crash-loop the container.
- **Bad input is answered in the status line**, not with an exception: empty text, and text over `MAX_INPUT_CHARS`
  characters (default 20,000; a Space variable too). The predictor handles any length (overlapping windows); the
  cap bounds the CPU time one visitor can take on a shared Space.
- **Load limits.** `queue(default_concurrency_limit=2, max_size=32)`: two predictions at a time (a free CPU Space
  has two vCPUs), at most 32 waiting; beyond that Gradio tells the visitor the queue is full.
- **Highlights use the predictor's character offsets** (`{"text", "entities": [{"entity", "start", "end"}]}`), so the
  highlighted text is the input exactly as typed. Each label reads `TYPE score` (score to two decimals); all labels
  of one type share the type's colour. The colour map is fixed when the app is built (every `TYPE 0.00` ...
  `TYPE 1.00` label of the model's types), so the endpoint returns plain values, not component updates.
- **No data leaves or stays.** `GRADIO_ANALYTICS_ENABLED=False` stops Gradio's own calls home. A `gr.Blocks` app has
  no Flag button (flagging, and its `flagging_mode`, belong to `gr.Interface`), so no visitor text is stored.
- **Host and port.** `HOST`/`PORT` when set; otherwise Gradio's own `GRADIO_SERVER_NAME`/`GRADIO_SERVER_PORT`,
  which Spaces set, and 127.0.0.1:7860 on a laptop.

Further tasks (classification, extractive QA) get a tab each once their predictors exist: see `TASK_TABS`.
"""

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

# Before gradio is imported: it reads these at import time.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import gradio as gr  # noqa: E402

from hf_bert_tasks.ner.predictor import NerPredictor  # noqa: E402
from hf_bert_tasks.ner.tagging import split_tag  # noqa: E402

logger = logging.getLogger("hf_bert_tasks.demo")

DEFAULT_MODEL_ID = "hf-bert-tasks/bert-crf-ner"
DEFAULT_MAX_INPUT_CHARS = 20_000
EXAMPLES = [
    "明朝建立于1368年，开国皇帝是朱元璋。",
    "Angela Weber, chief executive of Northwind Bank, flew from Dublin to Toronto on Monday.",
]
TABLE_HEADERS = ["type", "text", "start", "end", "score"]
# Light colours, so that the text on them stays readable in the light and the dark theme.
PALETTE = ["#fca5a5", "#93c5fd", "#86efac", "#fcd34d", "#c4b5fd", "#f9a8d4", "#5eead4", "#fdba74"]

# The hook for further tasks. An entry `ENV_VARIABLE: (tab title, build_tab)` adds a tab when the environment
# variable names a model: `build_tab(model_id)` is called inside the open `gr.Tab` and creates that tab's
# components and events (load the model there, and answer load failures and bad input as the NER tab does).
# Planned, once their predictors exist in `hf_bert_tasks`:
#     "CLASSIFIER_ID": ("Text classification", build_classifier_tab)
#     "QA_MODEL_ID": ("Question answering", build_qa_tab)
TabBuilder = Callable[[str], None]
TASK_TABS: dict[str, tuple[str, TabBuilder]] = {}
PLANNED_TASK_VARIABLES = ("CLASSIFIER_ID", "QA_MODEL_ID")


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


def load_predictor(model_id: str) -> tuple[NerPredictor | None, str | None]:
    """`(predictor, None)`, or `(None, message)` saying in one paragraph why the model could not be loaded."""
    try:
        # A missing folder would otherwise be reported as a malformed Hub id.
        if model_id.startswith(("/", ".", "~")) and not Path(model_id).expanduser().is_dir():
            raise FileNotFoundError(f"there is no folder {Path(model_id).expanduser()}")
        return NerPredictor.from_pretrained(model_id), None
    except Exception as error:  # any failure (no such folder or id, no network, broken files) must leave the app up
        logger.exception("could not load the NER model %r", model_id)
        lines = str(error).strip().splitlines()
        reason = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
        return None, (
            f"**The NER model `{model_id}` could not be loaded.** {reason}\n\n"
            "Set the Space variable `MODEL_ID` to a Hub model id or a folder saved by `recipes/ner.py`."
        )


def entity_label(entity: dict) -> str:
    """The label shown on a highlighted entity: `"PER 0.98"`."""
    return f"{entity['type']} {entity['score']:.2f}"


def label_colours(predictor: NerPredictor) -> dict[str, str]:
    """The colour of every label `entity_label` can produce for the model: one colour per entity type (types in
    sorted order, the palette reused cyclically), the same for every score."""
    types = sorted({split_tag(label)[1] for label in predictor.id2label.values()} - {None})
    return {
        entity_label({"type": entity_type, "score": hundredths / 100}): PALETTE[i % len(PALETTE)]
        for i, entity_type in enumerate(types)
        for hundredths in range(101)
    }


def input_problem(text: str | None, limit: int) -> str | None:
    """Why `text` cannot be tagged (empty, or longer than `limit` characters), or None when it can."""
    if text is None or not text.strip():
        return "Enter some text to tag (the box is empty)."
    if len(text) > limit:
        return (
            f"The text is {len(text):,} characters long; this demo tags at most {limit:,}. "
            "Shorten it, or run `hf_bert_tasks.ner.predictor.NerPredictor` yourself: it takes text of any length."
        )
    return None


def build_ner_tab(model_id: str, limit: int) -> None:
    """The NER tab's components and events (call inside an open `gr.Tab`)."""
    predictor, load_error = load_predictor(model_id)

    gr.Markdown(
        f"Model: `{model_id}`. Paste Chinese or English text, up to {limit:,} characters; long texts are tagged "
        "in overlapping windows. Each entity is shown with its type and score (the mean probability of its tags: "
        "CRF marginals, or softmax for a softmax head)."
    )
    gr.Markdown(load_error or "", visible=load_error is not None, elem_id="ner-model-error")
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
    table = gr.Dataframe(
        headers=TABLE_HEADERS, datatype=["str", "str", "number", "number", "number"], interactive=False,
        label="Entities (character offsets: text[start:end])", elem_id="ner-table",
    )

    def tag_entities(text: str):
        """Entities of `text`: (highlighted text, table rows, status line)."""
        problem = load_error or input_problem(text, limit)
        if problem is not None:
            return None, [], problem
        began = time.perf_counter()
        entities = predictor(text)
        seconds = time.perf_counter() - began
        highlighted = {
            "text": text,
            "entities": [{"entity": entity_label(e), "start": e["start"], "end": e["end"]} for e in entities],
        }
        rows = [[e["type"], e["text"], e["start"], e["end"], round(e["score"], 4)] for e in entities]
        found = f"{len(entities)} entit{'y' if len(entities) == 1 else 'ies'}"
        return highlighted, rows, f"Found {found} in {len(text):,} characters ({seconds:.2f} s)."

    outputs = [highlight, table, status]
    submit.click(tag_entities, inputs=text, outputs=outputs, api_name="tag_entities")
    # Not cached: caching would run the model at start-up (on Spaces by default), before anyone asks.
    gr.Examples(
        examples=[[example] for example in EXAMPLES], inputs=text, outputs=outputs, fn=tag_entities,
        run_on_click=True, cache_examples=False, elem_id="ner-examples",
    )


def build_demo(model_id: str | None = None) -> gr.Blocks:
    """The whole app, queued: the NER tab on `model_id` (default: `MODEL_ID`, else `DEFAULT_MODEL_ID`), and a tab
    for each configured task of `TASK_TABS`."""
    model_id = model_id or os.environ.get("MODEL_ID") or DEFAULT_MODEL_ID
    limit = max_input_chars()
    for variable in PLANNED_TASK_VARIABLES:
        if os.environ.get(variable) and variable not in TASK_TABS:
            logger.warning("%s is set, but this demo has no tab for that task yet: ignoring it", variable)
    with gr.Blocks(title="BERT+CRF named entities", analytics_enabled=False) as demo:
        gr.Markdown("# BERT+CRF named-entity recognition")
        with gr.Tabs():
            with gr.Tab("Named entities"):
                build_ner_tab(model_id, limit)
            for variable, (title, build_tab) in TASK_TABS.items():
                task_model_id = os.environ.get(variable)
                if task_model_id:
                    with gr.Tab(title):
                        build_tab(task_model_id)
    return demo.queue(default_concurrency_limit=2, max_size=32)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    port = os.environ.get("PORT")
    # None defers to Gradio: GRADIO_SERVER_NAME/GRADIO_SERVER_PORT (set on Spaces), else 127.0.0.1:7860.
    build_demo().launch(server_name=os.environ.get("HOST") or None, server_port=int(port) if port else None)

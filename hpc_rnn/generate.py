"""Command: write recipes with a trained model.

    python -m hpc_rnn.generate --checkpoint RUN --n 20 --out DIR

`--checkpoint` is a checkpoint step directory or a run directory (its newest complete
checkpoint). Each recipe starts as the archive the model learned starts its recipes
(`layout.archive_of`: MasterCook's export line, or Meal-Master's header and `Title:`) and a title
(`--prompt`, or a random title word), and ends at the archive's end line (MasterCook's closing
`- - - -`, Meal-Master's `MMMMM`), at the next header, or after `--max-words`.
Recipes go to DIR/recipe-0001.txt ... with one line per recipe in DIR/manifest.jsonl.

Two ways to give the model its context: `window`, the lecture's, re-reads the last `window`
words from a zero state for every new word; `carry` reads the seed once and then one word per
step, carrying the recurrent state (constant work per word, and a context not cut at `window`).

Ask for a recipe: a title and an ingredient list, laid out as the archive the model learned
lays out a recipe (`hpc_rnn.prompt`), and the model writes the directions (and MasterCook's
yield line):

    python -m hpc_rnn.generate --checkpoint RUN --title "Lemon Chicken" \\
        --ingredient "1 pound chicken breasts -- skinned" --ingredient "2 lemons" --out DIR
    python -m hpc_rnn.generate --checkpoint RUN --title "Bread" --ingredients LIST.txt --out DIR
    python -m hpc_rnn.generate --checkpoint RUN --complete RECIPES.txt --out DIR

`--complete` keeps the title and ingredient list of every recipe of a MasterCook or Meal-Master
file and writes new directions for each. Words the vocabulary lacks are named, never dropped:
by default they are an error (`--unknown unk` reads them as `<unk>` where the vocabulary has
it). Files are written in the layout of the archive the model learned (`hpc_rnn.layout`);
`--layout tokens` writes the token text without header and end line. manifest.jsonl marks a
recipe that reached `--max-words` before its end line `"finished": false`. `--stick-to-list`
decodes under a constraint: once the list is written, no food word it lacks (`hpc_rnn.stick`).
"""

from __future__ import annotations

import itertools
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import NamedTuple

import torch

from hpc_rnn import atomic, checkpoint, config, layout, prompt, quality, shards, stick, text
from hpc_rnn.cli import Parser, UserError, command_parser, run_main
from hpc_rnn.config import GenerateConfig, ModelConfig, Sampling
from hpc_rnn.distributed import pick_device
from hpc_rnn.model import RecurrentLM
from hpc_rnn.vocab import Vocab, load_vocab

CONTEXTS = config.choices(Sampling, "context")
MANIFEST_FILE = "manifest.jsonl"
_RECIPE_FILES = "recipe-*.txt"


def generate(
    model: RecurrentLM,
    vocab: Vocab,
    sampling: Sampling,
    *,
    n: int,
    prompt: str = "",
    unknown: str = "error",
    stick_to: quality.IngredientLexicon | None = None,
) -> list[list[str]]:
    """`n` recipes as word lists, each its seed followed by at most `sampling.max_words` words.

    They are written on the model's device, in eval mode; the same arguments on the same kind
    of device give the same recipes. Words of `prompt` that the vocabulary lacks are handled as
    `unknown` says (`prompt.known_words`). With `stick_to`, directions name no food word of that
    lexicon that their list lacks (`hpc_rnn.stick`).
    """
    archive = layout.archive_of(vocab.index)
    written = _generate(model, vocab, archive, sampling, n, prompt, unknown, stick_to)
    return [w.words for w in written]


@dataclass(frozen=True)
class Written:
    """A recipe the model wrote: its words, seed included."""

    words: list[str]
    seed_words: int  # how many of `words` were given (the seed or prompt)
    finished: bool  # it ended at the recipe's end, not at max_words


def complete(
    model: RecurrentLM,
    vocab: Vocab,
    prompts: list[list[str]],
    sampling: Sampling,
    archive: layout.Archive | None,
    stick_to: quality.IngredientLexicon | None = None,
) -> list[Written]:
    """One recipe per prompt: its words (all in the vocabulary) and at most
    `sampling.max_words` more, written on the model's device, in eval mode, ending as
    `archive`'s recipes end (that of the model's vocabulary, `layout.archive_of`); with
    `stick_to`, as `generate` says."""
    ids = [[vocab.index[w] for w in p] for p in prompts]
    generator = _generator(model, sampling.seed)
    return _from_seeds(model, vocab, ids, sampling, generator, archive, stick_to)


def sample_next(
    logits: torch.Tensor,
    *,
    temperature: float,
    top_k: int,
    top_p: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """One word index per row of `logits` [B, n_words]; temperature 0 is the lecture's argmax."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    if 0 < top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, -math.inf)
    if top_p < 1.0:
        ordered, order = logits.sort(dim=-1, descending=True)
        probs = ordered.softmax(dim=-1)
        # A word goes when the likelier ones already reach top_p, so the likeliest always stays.
        drop = probs.cumsum(dim=-1) - probs >= top_p
        logits = logits.scatter(-1, order, ordered.masked_fill(drop, -math.inf))
    # Inverse-CDF sampling: one uniform number per row. torch.multinomial draws one random
    # number per word, which on a CPU costs three times the model's step at 5000 words.
    cdf = logits.softmax(dim=-1).cumsum(dim=-1, dtype=torch.float64)
    u = torch.rand(cdf.shape[0], 1, generator=generator, device=cdf.device, dtype=cdf.dtype)
    picks = torch.searchsorted(cdf, u * cdf[:, -1:], right=True).squeeze(1)
    # u * total can round up to total (odds about 2**-53): keep the index in range.
    return picks.clamp_max(cdf.shape[1] - 1)


def recipe_text(words: list[str]) -> str:
    """Readable text of a generated recipe, without its header line and closing line (MasterCook's
    or, after a Meal-Master header, Meal-Master's)."""
    lines = text.detokenize(words).split(text.NEWLINE)
    first = text.tokenize(lines[0]) if lines else []
    archives = (layout.MASTERCOOK_ARCHIVE, layout.MEAL_MASTER_ARCHIVE)
    archive = next((a for a in archives if a.header_at(first) == 0), None)
    if archive is not None:
        lines = lines[1:]
    while lines and not lines[-1].strip():
        lines.pop()
    if lines and (archive or layout.MASTERCOOK_ARCHIVE).ends_at(text.tokenize(lines[-1])):
        lines.pop()
    return text.NEWLINE.join(lines).strip(text.NEWLINE) + text.NEWLINE


class Trained(NamedTuple):
    """A checkpoint's model, ready to write, and what it was trained with."""

    model: RecurrentLM
    vocab: Vocab
    step_dir: Path
    config: dict  # the training config saved with the checkpoint
    data: str  # the data directory its vocabulary was read from


def load_model(path: str, vocab_dir: str, device: torch.device) -> Trained:
    """The model of checkpoint `path`, its vocabulary, step directory and training config.

    `path` is a run directory (its newest checkpoint that loads), a step directory, or the
    state.pt inside one.

    `vocab_dir` overrides the data directory named in the checkpoint's training config; either
    way the vocabulary must be the one the model was trained with.
    """
    step_dir, state = checkpoint.load_given(
        path, device, warn=lambda m: print(f"warning: {m}", file=sys.stderr, flush=True)
    )
    vocab_dir = vocab_dir or state["config"]["data"]
    try:
        vocab = load_vocab(vocab_dir)
    except FileNotFoundError:
        raise UserError(
            f"no vocabulary at {Path(vocab_dir) / 'vocab.json'}: pass --vocab DIR, the "
            "preprocessed data directory the model was trained on"
        ) from None
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if vocab.hash != state["vocab_hash"]:
        raise UserError(
            f"vocabulary in {vocab_dir} (hash {vocab.hash[:12]}) is not the one checkpoint "
            f"{step_dir} was trained with (hash {state['vocab_hash'][:12]}): pass --vocab with "
            "the data directory of that training run"
        )
    model = RecurrentLM(vocab.n_words, ModelConfig(**state["config"]["model"]))
    checkpoint.load_weights(model, state, step_dir)
    return Trained(model.to(device).eval(), vocab, step_dir, state["config"], vocab_dir)


def run(cfg: GenerateConfig) -> str:
    """Generate and write the recipes of `cfg`; returns the summary line."""
    # A missing title or ingredient list is reported before the checkpoint is read, which can
    # take a while (GenerateConfig has checked the flags); the prompts' layout, length and words
    # depend on the model's vocabulary.
    asked = _asked(cfg)
    out = Path(cfg.out)
    _check_out(out, cfg.overwrite)
    device = pick_device(cfg.device)
    model, vocab, step_dir, _, data = load_model(cfg.checkpoint, cfg.vocab, device)
    archive = layout.archive_of(vocab.index)
    stick_to = None
    if cfg.stick_to_list:
        corpus = shards.training_corpus(data, cfg.reference)
        stick_to = quality.lexicon_from_corpus(corpus)
    started = time.perf_counter()
    if asked is None:
        sampling = cfg.sampling()
        recipes = _generate(
            model, vocab, archive, sampling, cfg.n, cfg.prompt, cfg.unknown, stick_to
        )
        titles: list[str] = [""] * len(recipes)
    else:
        prompts = _known_prompts(asked, vocab, cfg)
        recipes = complete(model, vocab, prompts, cfg.sampling(), archive, stick_to)
        titles = [title for title, _ in asked]
    seconds = time.perf_counter() - started
    words = sum(len(r.words) for r in recipes)
    rate = words / seconds
    common = {
        "settings": {
            k: v for k, v in asdict(cfg).items() if k not in ("checkpoint", "out", "overwrite")
        },
        "device": str(device),
        "checkpoint": str(step_dir),
        "checkpoint_sha256": atomic.file_sha256(step_dir / checkpoint.STATE_FILE),
        "vocab_hash": vocab.hash,
        "words_per_s": round(rate, 1),
    }
    write_recipes(out, recipes, common, layout_name=cfg.layout, titles=titles, archive=archive)
    unfinished = sum(not r.finished for r in recipes)
    note = f", {unfinished} cut off at --max-words {cfg.max_words}" if unfinished else ""
    return f"generated {len(recipes)} recipes, {words} words, {rate:.0f} words/s{note}, in {out}"


def _asked(cfg: GenerateConfig) -> list[tuple[str, prompt.Recipe | prompt.Given]] | None:
    """(title, recipe) of each recipe asked for, or None to write from nothing; their prompts
    are laid out once the model's archive is known (`_known_prompts`).

    --title with --ingredient/--ingredients asks for --n versions of one recipe; --complete
    for one of each recipe of a file.
    """
    given = cfg.title is not None or bool(cfg.ingredient) or bool(cfg.ingredients)
    if cfg.complete and (given or cfg.prompt):
        raise UserError(
            "--complete takes the titles and lists of its file: drop --title, "
            "--ingredient, --ingredients and --prompt"
        )
    if given and cfg.prompt:
        raise UserError("--prompt and --title both give the title: use --title")
    if cfg.complete:
        return [(g.title, g) for g in prompt.recipes_of(cfg.complete)]
    if given:
        rows = tuple(prompt.ingredient_row(line) for line in cfg.ingredient)
        if cfg.ingredients:
            rows += prompt.read_ingredients(cfg.ingredients)
        recipe = prompt.Recipe(cfg.title or "", rows, cfg.servings, cfg.categories)
        prompt.check_recipe(recipe)
        return [(recipe.title.strip(), recipe)] * cfg.n
    return None


def _known_prompts(
    asked: list[tuple[str, prompt.Recipe | prompt.Given]], vocab: Vocab, cfg: GenerateConfig
) -> list[list[str]]:
    """The prompts in the layout of the model's archive, every word one of its vocabulary."""
    archive = prompt.archive_for(vocab)
    laid_out: dict[int, list[str]] = {}  # --n copies of one recipe are laid out once
    prompts = []
    for title, recipe in asked:
        if id(recipe) not in laid_out:
            laid_out[id(recipe)] = (
                recipe.words_in(archive)
                if isinstance(recipe, prompt.Given)
                else prompt.prompt_words(recipe, archive)
            )
        words = laid_out[id(recipe)]
        if len(words) > cfg.max_words:
            raise UserError(
                f"the title and ingredient list of {title!r} are {len(words)} words, more than "
                f"--max-words {cfg.max_words}, the longest recipe the model may write: shorten "
                "the list or raise --max-words"
            )
        prompts.append(words)
    what = f"the recipes of {cfg.complete}" if cfg.complete else "the title and ingredient list"
    # One check over all prompts, so that the error names every unknown word at once.
    prompt.known_words([w for words in prompts for w in words], vocab, cfg.unknown, what)
    return [prompt.known_words(words, vocab, cfg.unknown, what) for words in prompts]


def write_recipes(
    out: Path,
    recipes: list[Written],
    common: dict,
    *,
    layout_name: str = "archive",
    titles: list[str] | None = None,
    archive: layout.Archive | None = None,
) -> None:
    """recipe-NNNN.txt per recipe and manifest.jsonl, each file written whole or not at all.

    `layout_name` "archive" writes each recipe in `archive`'s layout (`layout.render`;
    MasterCook's when None), "tokens" its token text (`recipe_text`).

    Recipe files of an earlier run beyond the new ones are removed last, so the directory ends
    up holding exactly what the manifest lists.
    """
    out.mkdir(parents=True, exist_ok=True)
    width = max(4, len(str(len(recipes))))
    lines = []
    written = set()
    for i, recipe in enumerate(recipes, start=1):
        name = f"recipe-{i:0{width}d}.txt"
        body = (
            layout.render(recipe.words, archive)
            if layout_name == "archive"
            else recipe_text(recipe.words)
        )
        atomic.write_text(out / name, body)
        written.add(name)
        row = {
            "file": name,
            "words": len(recipe.words),
            "prompt_words": recipe.seed_words,
            "finished": recipe.finished,
            **({"title": titles[i - 1]} if titles and titles[i - 1] else {}),
            **common,
        }
        lines.append(json.dumps(row, sort_keys=True))
    atomic.write_text(out / MANIFEST_FILE, "".join(line + "\n" for line in lines))
    for stale in out.glob(_RECIPE_FILES):
        if stale.name not in written:
            stale.unlink()


def build_parser() -> Parser:
    parser = command_parser("hpc_rnn.generate", __doc__)
    parser.add_argument(
        "--checkpoint", required=True, help="a checkpoint step directory, or a run directory"
    )
    parser.add_argument("--out", required=True, help="directory for the recipes and manifest")
    # --title defaults to None, so that an empty --title "" is refused rather than read as none;
    # --ingredient is given once per ingredient.
    helps = {f.name: f.metadata["help"] for f in fields(GenerateConfig)}
    parser.add_argument("--title", default=None, help=helps["title"])
    parser.add_argument(
        "--ingredient", action="append", default=[], metavar="ROW", help=helps["ingredient"]
    )
    config.add_arguments(parser, GenerateConfig, skip=("checkpoint", "out", "title", "ingredient"))
    return parser


def main(argv: list[str] | None = None) -> int:
    def body() -> int:
        args = build_parser().parse_args(argv)
        cfg = config.from_args(GenerateConfig, args, ingredient=tuple(args.ingredient))
        print(run(cfg), flush=True)
        return 0

    return run_main(body)


# ---------------------------------------------------------------------------------------------
# Decoding


def _generate(
    model: RecurrentLM,
    vocab: Vocab,
    archive: layout.Archive | None,
    sampling: Sampling,
    n: int,
    prompt_text: str,
    unknown: str,
    stick_to: quality.IngredientLexicon | None,
) -> list[Written]:
    # The seeds' random titles come from the generator that then samples the words.
    generator = _generator(model, sampling.seed)
    seeds = _seeds(vocab, archive, _prompt_ids(vocab, prompt_text, unknown), n, generator)
    return _from_seeds(model, vocab, seeds, sampling, generator, archive, stick_to)


def _generator(model: RecurrentLM, seed: int) -> torch.Generator:
    return torch.Generator(device=model.output.weight.device).manual_seed(seed)


def _from_seeds(
    model: RecurrentLM,
    vocab: Vocab,
    seeds: list[list[int]],
    sampling: Sampling,
    generator: torch.Generator,
    archive: layout.Archive | None,
    stick_to: quality.IngredientLexicon | None,
) -> list[Written]:
    """One recipe per seed (word indices), in the seeds' order, ending as `archive`'s end.

    Seeds may differ in length. In `carry` mode each is read on its own and the states are
    batched; in `window` mode seeds whose windows have the same length share a batch.
    """

    def key(i: int) -> int:
        return 0 if sampling.context == "carry" else min(len(seeds[i]), vocab.window)

    model.eval()
    device = model.output.weight.device
    guard = None if stick_to is None else stick.ListGuard(vocab, stick_to, archive, device)
    done: dict[int, Written] = {}
    with torch.inference_mode():
        for _, group in itertools.groupby(sorted(range(len(seeds)), key=key), key=key):
            rows = list(group)
            for start in range(0, len(rows), sampling.batch):
                part = rows[start : start + sampling.batch]
                written = _generate_batch(
                    model, vocab, [seeds[i] for i in part], sampling, generator, archive, guard
                )
                done.update(zip(part, written, strict=True))
    return [done[i] for i in range(len(seeds))]


def _generate_batch(
    model: RecurrentLM,
    vocab: Vocab,
    seeds: list[list[int]],
    sampling: Sampling,
    generator: torch.Generator,
    archive: layout.Archive | None,
    guard: stick.ListGuard | None,
) -> list[Written]:
    """Recipes from `seeds`: word indices of any lengths in `carry` mode, of one window length
    (min(len, window)) in `window` mode; they end as `archive`'s recipes end (`_recipe_end`).
    With `guard`, each recipe's words it bans get no probability once its list is closed."""
    device = model.output.weight.device
    n_seed = [len(s) for s in seeds]
    recipes = [vocab.decode(s) for s in seeds]
    bans = None if guard is None else stick.RowBans(guard, recipes)
    finished = [False] * len(seeds)
    live = list(range(len(recipes)))  # the recipe each batch row writes
    history = (
        torch.tensor([s[-vocab.window :] for s in seeds], device=device)
        if sampling.context == "window"
        else None
    )
    if history is not None:
        logits, state = model(history, last_only=True)
    elif len(set(n_seed)) == 1:
        logits, state = model(torch.tensor(seeds, device=device), last_only=True)
    else:
        # Seeds of different lengths are read one by one; from then on one step serves them all.
        starts = [model(torch.tensor([s], device=device), last_only=True) for s in seeds]
        logits = torch.cat([lg for lg, _ in starts])
        state = model.join_rows([st for _, st in starts])
    max_words = sampling.max_words
    for step in range(max_words):
        if bans is not None:
            logits = logits.masked_fill(bans.mask, -math.inf)
        nxt = sample_next(
            logits,
            temperature=sampling.temperature,
            top_k=sampling.top_k,
            top_p=sampling.top_p,
            generator=generator,
        )
        keep = []
        for row, word in enumerate(vocab.decode(nxt.tolist())):
            r = live[row]
            words = recipes[r]
            words.append(word)
            if bans is not None:
                bans.saw(row, words)
            end = _recipe_end(words, n_seed[r], archive)
            if end is None:
                keep.append(row)
            else:
                del words[end:]
                finished[r] = True
        if not keep or step == max_words - 1:
            break
        if len(keep) < len(live):
            # Finished recipes leave the batch, so no work is spent on them.
            rows = torch.tensor(keep, device=nxt.device)
            nxt, live = nxt[rows], [live[row] for row in keep]
            if history is None:
                state = model.select_rows(state, rows)
            else:
                history = history[rows]
            if bans is not None:
                bans.select(keep)
        if history is None:
            logits, state = model(nxt[:, None], state, last_only=True)
        else:
            history = torch.cat([history, nxt[:, None]], dim=1)[:, -vocab.window :]
            logits, _ = model(history, last_only=True)
    return [Written(w, k, f) for w, k, f in zip(recipes, n_seed, finished, strict=True)]


def _recipe_end(words: list[str], n_seed: int, archive: layout.Archive | None = None) -> int | None:
    """The length a recipe keeps if its newest word ended it, else None: through the line that
    closes a recipe of `archive` (MasterCook when None), or up to where a line began that reads
    as the header of the next one (`layout.Archive.header_at`)."""
    archive = archive or layout.MASTERCOOK_ARCHIVE
    if words[-1] == text.NEWLINE:
        # The end lines ask only which words a line has, so reading back to front is fine.
        line = list(itertools.takewhile(lambda w: w != text.NEWLINE, reversed(words[:-1])))
        return len(words) if archive.ends_at(line) else None
    if words[-1] not in layout.HEADER_LAST_WORDS:
        return None
    line = list(itertools.takewhile(lambda w: w != text.NEWLINE, reversed(words)))[::-1]
    at = archive.header_at(line)
    if at is None:
        return None
    start = len(words) - len(line) + at
    return start if start >= n_seed else None


def _seeds(
    vocab: Vocab,
    archive: layout.Archive | None,
    prompt_ids: list[int],
    n: int,
    generator: torch.Generator,
) -> list[list[int]]:
    """Word indices of the `n` recipes' starts: the header line of the vocabulary's archive
    (`layout.archive_of`), then the prompt or a random title word (after Meal-Master's
    `Title:`). Recipes in the corpus begin so, which is where the model has learned what comes
    next. A vocabulary of neither archive gets the prompt alone, or the lecture's seed: `window`
    random words."""
    device = generator.device
    if archive is None:
        if prompt_ids:
            return [prompt_ids] * n
        shape = (n, vocab.window)
        return torch.randint(vocab.n_words, shape, generator=generator, device=device).tolist()
    header = [vocab.index[w] for w in archive.seed_words]
    if prompt_ids:
        return [header + prompt_ids] * n
    # Titles are words: drawing from all of the vocabulary would start many with "," or "\n".
    titles = [i for i, w in enumerate(vocab.words) if w.isalpha()] or list(range(vocab.n_words))
    picks = torch.randint(len(titles), (n,), generator=generator, device=device).tolist()
    return [[*header, titles[p]] for p in picks]


def _prompt_ids(vocab: Vocab, prompt_text: str, unknown: str) -> list[int]:
    if not prompt_text:
        return []
    words = prompt.known_words(text.tokenize(prompt_text), vocab, unknown, "--prompt")
    if not words:
        raise UserError(f"--prompt {prompt_text!r} holds no words: give a title")
    return [vocab.index[w] for w in words]


# ---------------------------------------------------------------------------------------------
# Files


def _check_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"output {out} is a file, not a directory: choose another --out")
    held = out.is_dir() and (any(out.glob(_RECIPE_FILES)) or (out / MANIFEST_FILE).exists())
    if held and not overwrite:
        raise UserError(
            f"output directory {out} already holds recipes: choose another --out, or pass --overwrite"
        )


if __name__ == "__main__":
    raise SystemExit(main())

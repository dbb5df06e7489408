"""CIDEr-D equals pycocoevalcap's Cider; our tokenizer against its Java PTB tokenizer."""

import random
import shutil

import evaluate
import pytest
from pycocoevalcap.cider.cider import Cider
from system_packages import require

from hf_limber.evaluation import cider_d, tokenize_caption
from hf_limber.metrics import metric_path

# Captions with the constructions PTB treats specially: clitics, quotes, brackets, numbers,
# abbreviations, symbols, unicode punctuation, emoji, markup.
VARIED_CAPTIONS = [
    "A man riding a wave on top of a surfboard.",
    "Two dogs playing in the grass, one with a frisbee!",
    "The cat isn't sleeping; it's watching the bird's nest.",
    "They're standing near a 10-year-old boy's bike (a red one).",
    'A "vintage" photo of a black-and-white TV set...',
    "A woman at 7:30 p.m. in the U.S. holding $5 and 50% off coupons.",
    "I can't believe it won't fit: cannot, gonna, wanna, gotta.",
    "Mr. Smith's cafe sells 1,000 cups of coffee at 3.5 dollars each.",
    "A pizza with pepperoni, olives and/or mushrooms on a plate.",
    "A group of people -- some smiling -- waiting at the bus stop.",
    "A kitchen with a stove, a sink & a fridge [white].",
    "The dogs' toys are scattered {everywhere} on the floor.",
    "A child's drawing of a sun :) on the wall.",
    "\u201cSmart\u201d phones lying on a table \u2013 next to a laptop\u2019s charger.",
    "A sign that says 'STOP' at an intersection.",
    "Someone's gonna eat that hot-dog, I'm sure; we'll see, you'd agree, we've done it.",
    "An emoji \U0001f600 of a smiling face, caf\u00e9 au lait.",
    'Three  birds\tsitting on a wire at 5\'10" height.',
    "A photo of the 1990s car, e.g. a Ford, etc.",
    "A #hashtag and an @user on http://example.com/page?x=1.",
    "A bowl of fruit: apples, bananas, and oranges?!",
    "Wow!!! Really?? Hmm.... ---- and -- + = < > | ~ ^ \\",
    "It is 30\u00b0 outside \u00a9 2020, \u20ac 5 or \u00a35 for \u00bd a 3\u00d73 grid.",
    "A 10km run in 3d, an x-ray of a t-shirt in mid-air, well-lit.",
    "They aren't here and wouldn't've known, d'oh.",
    "A man in a plaid shirt.A woman behind him.",
    "THE BIG RED BARN ON A HILL",
    "Two people, one of whom ( the taller ) is smiling .",
    "A tag <b>bold</b>, a trailing slash/ and a /leading one and 1/2.",
    "A train passes by, at 5:00pm, its 100's of cars.",
    "He said \"hi\" and 'bye' & left... Okay?",
    "Email me at someone@example.com or see www.example.com.",
    "Stuff like U.S.A. and U.K. plus A.B.C. or Ph.D. holders in St. Louis, Pa. and Ark.",
    "A 1.5-liter bottle, a 12-pack, 3D glasses and 4K TV.",
    "Is this 2.? Or .5 or 5. or 05.06.2020?",
    "Bread &amp; butter on a plate.",
    "A flag of Laos emoji (flags, country flag): LA.",
    "A +1 and a -1 sign in a caf\ufffd.",
    "An old-fashioned clock reads twelve o\u2019clock.",
    "A victory hand emoji (people & body, hand fingers partial): peace, v.",
    "Rock'n'roll band playing 'til dawn.",
    "Let's go y'all, get 'em 'cause c'mon ol' ma'am, it's the '90s or 90's.",
    "A Mac-n-cheese dish with U.S.-made cheese.",
    "Is it a dog?Yes it is.",
]

# Where our pure-Python tokens still differ from PTB's: (ours, PTB's).
KNOWN_DIFFERENCES = {
    "Rock'n'roll band playing 'til dawn.": (
        "rock'n'roll band playing 'til dawn", "rock 'n' roll band playing 'til dawn"
    ),
    "Let's go y'all, get 'em 'cause c'mon ol' ma'am, it's the '90s or 90's.": (
        "let 's go y'all get 'em 'cause c'mon ol ma'am it 's the '90s or 90 's",
        "let 's go y' all get 'em 'cause c'mon ol' ma'am it 's the '90s or 90 's",
    ),
    "A Mac-n-cheese dish with U.S.-made cheese.": (
        "a mac-n-cheese dish with u.s. made cheese", "a mac-n-cheese dish with u.s.-made cheese"
    ),
    "Is it a dog?Yes it is.": ("is it a dog yes it is", "is it a dog?yes it is"),
}


@pytest.fixture(scope="module")
def ptb_tokenize():
    require(shutil.which("java"), "Java (pycocoevalcap's PTB tokenizer, the CIDEr-D reference)")
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    def run(captions: list[str]) -> list[str]:
        # Each caption is followed by one that starts with "A", as reference captions are.
        lines = [text for caption in captions for text in (caption, "A dog.")]
        tokens = PTBTokenizer().tokenize({i: [{"caption": text}] for i, text in enumerate(lines)})
        return [tokens[2 * i][0] for i in range(len(captions))]

    return run


def test_tokenizer_matches_ptb_except_the_known_differences(ptb_tokenize):
    ptb = ptb_tokenize(VARIED_CAPTIONS)
    differences = {
        caption: (tokenize_caption(caption), theirs)
        for caption, theirs in zip(VARIED_CAPTIONS, ptb)
        if tokenize_caption(caption) != theirs
    }
    assert differences == KNOWN_DIFFERENCES


def test_ptb_tokens_of_a_caption_depend_on_the_next_caption(ptb_tokenize):
    """Why a per-caption tokenizer cannot match PTB everywhere: PTB lexes the captions as one stream."""
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    caption = "A sign that says x."
    before_article = PTBTokenizer().tokenize({0: [{"caption": caption}], 1: [{"caption": "A dog."}]})[0][0]
    before_lower_case = PTBTokenizer().tokenize({0: [{"caption": caption}], 1: [{"caption": "a dog."}]})[0][0]
    assert (before_article, before_lower_case) == ("a sign that says x", "a sign that says x.")
    assert tokenize_caption(caption) == before_article


@pytest.mark.parametrize(("caption", "tokens"), [
    ("A man's dog isn't here.", "a man 's dog is n't here"),
    ("Two (2) people -- smiling!", "two -lrb- 2 -rrb- people smiling"),
    ("\u201cHi\u201d, said Mr. Lee at 5:00pm.", "hi said mr. lee at 5:00 pm"),
    ("I cannot see the U.S. flag...", "i can not see the u.s. flag"),
    ("A 10-year-old's 1,000 $ bills; 3.5% off", "a 10-year-old 's 1,000 $ bills 3.5 % off"),
])
def test_tokenizer_without_java(caption, tokens):
    assert tokenize_caption(caption) == tokens


def random_corpus(items: int = 300, seed: int = 0) -> tuple[list[str], list[list[str]]]:
    """Overlapping captions, exact copies of a reference, repeated words (clipping), one-word and
    empty hypotheses, and a varying number of references per image."""
    rng = random.Random(seed)
    vocabulary = "a an the man woman dog cat red blue sitting on of with in table street two bus riding next to".split()
    predictions, references = [], []
    for index in range(items):
        refs = [
            " ".join(rng.choices(vocabulary[: rng.randint(5, len(vocabulary))], k=rng.randint(3, 14)))
            for _ in range(rng.randint(1, 6))
        ]
        kind = index % 5
        if kind == 0:
            prediction = refs[0]
        elif kind == 1:
            prediction = " ".join(["dog"] * rng.randint(1, 8))
        elif kind == 2:
            prediction = rng.choice(vocabulary) if index % 10 else ""
        else:
            prediction = " ".join(rng.choices(vocabulary, k=rng.randint(2, 20)))
        predictions.append(prediction)
        references.append(refs)
    return predictions, references


def pycocoevalcap_cider(predictions, references):
    return Cider().compute_score(
        {i: list(refs) for i, refs in enumerate(references)}, {i: [p] for i, p in enumerate(predictions)}
    )


def test_cider_d_equals_pycocoevalcap_on_the_same_tokens():
    predictions, references = random_corpus()
    ours = cider_d(predictions, references, tokenize=False)
    score, scores = pycocoevalcap_cider(predictions, references)
    assert max(abs(a - b) for a, b in zip(ours.scores, scores)) < 1e-6
    assert ours.score == pytest.approx(score, abs=1e-6)
    assert 0.5 < ours.score < 5  # a corpus with real overlap, not all zeros


def test_cider_d_on_raw_captions_equals_pycocoevalcap_after_ptb(ptb_tokenize):
    captions = [c for c in VARIED_CAPTIONS if c not in KNOWN_DIFFERENCES]
    rng = random.Random(1)
    references = [rng.sample(captions, 3) for _ in range(12)]
    predictions = [refs[0] if i % 3 == 0 else rng.choice(captions) for i, refs in enumerate(references)]
    flat = ptb_tokenize(predictions + [r for refs in references for r in refs])
    ptb_predictions, ptb_refs = flat[: len(predictions)], flat[len(predictions) :]
    ptb_references = [ptb_refs[3 * i : 3 * i + 3] for i in range(len(references))]
    score, _ = pycocoevalcap_cider(ptb_predictions, ptb_references)
    assert cider_d(predictions, references).score == pytest.approx(score, abs=1e-6)


def test_cider_d_edge_cases():
    # Document frequencies come from the evaluated set: one image gives idf = log(1) = 0.
    assert cider_d(["a dog"], [["a dog"]]).score == 0.0
    # A perfect copy of every reference beats a partial match.
    refs = [["a dog on a couch"], ["a red bus"], ["two cats"]]
    assert cider_d(["a dog on a couch", "a red bus", "two cats"], refs).score > cider_d(
        ["a dog", "a bus", "cats"], refs
    ).score
    with pytest.raises(ValueError, match="one list of reference captions per generated caption"):
        cider_d(["a", "b"], [["a"]])
    with pytest.raises(ValueError, match="Item 1 has no reference captions"):
        cider_d(["a", "b"], [["a"], []])


def test_evaluate_module_gives_the_function_result():
    predictions, references = random_corpus(items=20, seed=3)
    metric = evaluate.load(metric_path("cider_d"))
    result = metric.compute(predictions=predictions, references=references, tokenize=False)
    expected = cider_d(predictions, references, tokenize=False)
    assert result["cider_d"] == pytest.approx(expected.score, abs=1e-12)
    assert result["scores"] == pytest.approx(expected.scores, abs=1e-12)

"""Lexical-concept analysis: WordNet from Debian's files, offline tagging, precision/recall by hand."""

import gzip
import re

import evaluate
import pytest
from system_packages import lexnames_manual_page, require

from hf_limber.evaluation import caption_concepts, lexical_concepts, load_wordnet, prepare_wordnet
from hf_limber.evaluation.wordnet import DATABASE_FILES, LEXICOGRAPHER_FILES, lexnames_text
from hf_limber.metrics import metric_path


def test_prepare_wordnet_lays_out_an_nltk_folder_once(tmp_path):
    folder = prepare_wordnet(tmp_path / "nltk_data")
    assert folder == tmp_path / "nltk_data" / "corpora" / "wordnet"
    assert sorted(p.name for p in folder.iterdir()) == sorted([*DATABASE_FILES, "lexnames"])
    lines = (folder / "lexnames").read_text().splitlines()
    assert len(lines) == 45
    assert lines[0] == "00\tadj.all\t3" and lines[5] == "05\tnoun.animal\t1" and lines[44] == "44\tadj.ppl\t3"
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    assert prepare_wordnet(tmp_path / "nltk_data") == folder
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == stamps


def test_missing_debian_files_name_the_packages(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install wordnet-base wordnet-sense-index"):
        prepare_wordnet(tmp_path / "nltk_data", source=tmp_path / "empty")


def test_lexnames_agree_with_the_manual_page():
    page = lexnames_manual_page()
    require(page, "The lexnames(5WN) manual page of wordnet-base")
    rows = re.findall(r"^(\d\d)\t(\S+)\s*\t", gzip.open(page, "rt").read(), re.MULTILINE)
    assert rows == [(f"{number:02d}", name) for number, name in enumerate(LEXICOGRAPHER_FILES)]
    assert lexnames_text().splitlines()[18] == "18\tnoun.person\t1"


def test_wordnet_reads_offline():
    wordnet = load_wordnet()
    dog, cat = wordnet.synset("dog.n.01"), wordnet.synset("cat.n.01")
    assert wordnet.get_version() == "3.0"
    assert dog.lexname() == "noun.animal"  # lexnames is right
    assert dog.wup_similarity(cat) == pytest.approx(0.857142857, abs=1e-6)  # nltk's documented value
    assert wordnet.lemma_from_key("dog%1:05:00::").synset() == dog  # index.sense is in place


def test_caption_concepts():
    concepts = caption_concepts("Two dogs are sitting next to a red couch to the left of the bigger window.")
    assert concepts["nouns"] == {"dog", "couch", "window"}
    assert concepts["modifiers"] == {"red", "big"}
    assert concepts["relations"] == {"sit", "next to", "left of"}  # "are" is no relation
    assert caption_concepts("a man riding a wave on top of a surfboard")["relations"] == {"ride", "on top of"}


def test_precision_and_recall_worked_by_hand():
    predictions = ["a dog on a couch", "a man riding a red horse"]
    references = [
        ["two dogs are sitting on the couch", "a brown dog on a sofa"],
        ["a man riding a brown horse next to a fence", "a person riding a pony"],
    ]
    result = lexical_concepts(predictions, references, top_n=5)
    # Reference nouns by captions mentioning them: dog 2, then one each for couch, fence, horse,
    # man, person, pony, sofa; ties alphabetical.
    assert result.nouns.top == ["dog", "couch", "fence", "horse", "man"]
    # Item 1: G = {dog, couch}, R = {dog, couch}; item 2: G = {man, horse}, R = {fence, horse, man}.
    assert result.nouns.precision == 4 / 4
    assert result.nouns.recall == 4 / 5
    assert result.nouns.per_concept["fence"].in_references == 1
    assert result.nouns.per_concept["fence"].in_both == 0
    # "brown" is the only reference modifier; the generated "red" is not a top concept.
    assert result.modifiers.top == ["brown"]
    assert (result.modifiers.precision, result.modifiers.recall) == (0.0, 0.0)
    # Relations: on 2, ride 2, next to 1, sit 1. Item 1: G = {on}, R = {on, sit}; item 2: G = R = {ride}
    # plus "next to" in R.
    assert result.relations.top == ["on", "ride", "next to", "sit"]
    assert result.relations.precision == 2 / 2
    assert result.relations.recall == 2 / 4
    # Every generated noun is also a reference noun of its image: similarity 1.
    assert result.noun_wup_precision == pytest.approx(1.0)
    assert 0 < result.noun_wup_recall < 1


def test_evaluate_module_gives_the_function_result():
    predictions = ["a cat on a red chair", "a bus"]
    references = [["a cat sitting on a chair", "a grey cat"], ["a red bus next to a car"]]
    result = evaluate.load(metric_path("lexical_concepts")).compute(
        predictions=predictions, references=references, top_n=10
    )
    assert result == lexical_concepts(predictions, references, top_n=10).flat()
    assert result["top_nouns"] == ["cat", "bus", "car", "chair"]

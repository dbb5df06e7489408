"""LiMBeR as transformers users reach Llava: pipeline("image-text-to-text"), a chat template, streamers,
with hf_limber or with transformers alone (trust_remote_code), and a card that names the pipeline."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from limber_parts import image_encoder, language_model, word_tokenizer
from PIL import Image
from transformers import AutoModelForImageTextToText, TextIteratorStreamer, TextStreamer, pipeline

from hf_limber.limber import LimberForCausalLM, LimberProcessor

GENERATE = dict(max_new_tokens=5, generate_kwargs={"do_sample": False, "min_new_tokens": 5})
PROMPTS = ["a picture of", "q : what color ? a :", "the"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """A saved LiMBeR adapter on a CLIP ViT tower of ours (so transformers alone needs the shipped code)."""
    root = tmp_path_factory.mktemp("limber")
    image_encoder("clip-vit").save_pretrained(root / "encoder")
    language_model("llama").save_pretrained(root / "lm")
    model = LimberForCausalLM.from_parts(root / "encoder", root / "lm")
    torch.manual_seed(0)
    with torch.no_grad():
        model.projection.weight.normal_()
    model.save_pretrained(root / "limber")
    LimberProcessor.for_model(model, word_tokenizer()).save_pretrained(root / "limber")
    return root / "limber"


def pictures() -> list[Image.Image]:
    return [Image.new("RGB", (40, 40 + 8 * i), colour) for i, colour in
            enumerate([(200, 30, 30), (30, 200, 30), (30, 30, 200)])]


def chat(image, text: str | None = None) -> list[dict]:
    content = [{"type": "image", "image": image}] + ([{"type": "text", "text": text}] if text else [])
    return [{"role": "user", "content": content}]


def test_registered_where_pipelines_and_remote_code_look(folder):
    assert type(AutoModelForImageTextToText.from_pretrained(folder)) is LimberForCausalLM
    auto_map = json.loads((folder / "config.json").read_text())["auto_map"]
    assert auto_map["AutoModel"] == auto_map["AutoModelForImageTextToText"] == "modeling_limber.LimberForCausalLM"
    assert (folder / "chat_template.jinja").is_file()


def test_the_pipeline_captions_and_answers_as_generate_does(folder):
    pipe = pipeline("image-text-to-text", model=str(folder))
    model, processor = LimberForCausalLM.from_pretrained(folder), LimberProcessor.from_pretrained(folder)
    image = pictures()[0]
    direct = processor.batch_decode(model.generate(**processor(images=image, text="a picture of"), max_new_tokens=5,
                                                   min_new_tokens=5, do_sample=False))[0]
    out = pipe(images=image, text="a picture of", return_full_text=False, **GENERATE)
    assert out[0]["generated_text"].strip() == direct
    full = pipe(images=image, text="a picture of", **GENERATE)
    assert full[0]["generated_text"].startswith("a picture of")

    asked = processor.apply_chat_template(chat(image, "what color ?"), tokenize=True, return_dict=True)
    direct = processor.batch_decode(model.generate(**asked, max_new_tokens=5, min_new_tokens=5, do_sample=False))[0]
    answer = pipe(text=chat(image, "what color ?"), return_full_text=False, **GENERATE)
    assert answer[0]["generated_text"].strip() == direct
    conversation = pipe(text=chat(image, "what color ?"), **GENERATE)[0]["generated_text"]
    assert conversation[-1]["role"] == "assistant"


def test_batched_pipeline_calls_equal_one_by_one(folder):
    pipe = pipeline("image-text-to-text", model=str(folder))
    images = pictures()
    together = pipe(images=images, text=PROMPTS, return_full_text=False, **GENERATE)
    alone = [pipe(images=image, text=prompt, return_full_text=False, **GENERATE)[0]
             for image, prompt in zip(images, PROMPTS)]
    assert [o["generated_text"] for o in together] == [o["generated_text"] for o in alone]

    chats = [chat(image, prompt) for image, prompt in zip(images, PROMPTS)]
    batched = pipe(text=chats, batch_size=3, return_full_text=False, **GENERATE)
    single = [pipe(text=conversation, return_full_text=False, **GENERATE)[0] for conversation in chats]
    assert [o[0]["generated_text"] for o in batched] == [o["generated_text"] for o in single]
    assert any(o["generated_text"] for o in single)  # the comparison is not between empty strings


def test_chat_template_turns_image_entries_into_slots(folder):
    processor = LimberProcessor.from_pretrained(folder)
    image = pictures()[0]
    conversation = [
        {"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": "what <image> color ?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "red"}]},
        {"role": "user", "content": [{"type": "image", "image": image}]},
    ]
    # The n-shot format of evaluation/questions.py; a typed marker is a plain word; no text: the caption prompt.
    assert processor.apply_chat_template(conversation, add_generation_prompt=True) == (
        "<image>Q: what image color ? A: red\n<image>A picture of")
    batch = processor.apply_chat_template(conversation, tokenize=True, return_dict=True)
    k = processor.num_image_tokens
    assert batch["pixel_values"].shape[0] == 2
    assert (batch["input_ids"] == processor.image_token_id).sum().item() == 2 * k
    same = processor(images=[image, image], text=["<image>Q: what image color ? A: red\n<image>A picture of"])
    assert torch.equal(batch["input_ids"], same["input_ids"])
    # Two conversations at once, left-padded for generation.
    two = processor.apply_chat_template([chat(image), chat(image, "what color ?")], tokenize=True, return_dict=True)
    assert two["input_ids"].shape[0] == 2 and two["attention_mask"][0, 0] == 0


def test_chat_opens_with_the_text_the_caption_prompt_puts_before_its_image(folder):
    from hf_limber.evaluation.questions import question_prompt

    processor = LimberProcessor.from_pretrained(folder)
    processor.prompt = "<s><image>"  # the LM's document start, then the image (the emoji recipe's form)
    image = pictures()[0]
    assert processor.prompt_around_image == ("<s>", "")
    captioning = processor.apply_chat_template([{"role": "user", "content": [{"type": "image", "image": image}]}])
    assert captioning == processor.prompt  # one image slot, not the marker twice
    asked = processor.apply_chat_template(chat(image, "what color ?"))
    assert asked == question_prompt("what color ?", start="<s>")  # the VQA evaluation's own format
    batch = processor.apply_chat_template(chat(image, "what color ?"), tokenize=True, return_dict=True)
    assert (batch["input_ids"] == processor.image_token_id).sum().item() == processor.num_image_tokens


def test_streamers_give_the_generated_text_token_by_token(folder, capsys):
    model, processor = LimberForCausalLM.from_pretrained(folder), LimberProcessor.from_pretrained(folder)
    inputs = processor(images=pictures()[1], text="a picture of")
    settings = dict(max_new_tokens=6, min_new_tokens=6, do_sample=False)
    expected = processor.tokenizer.decode(model.generate(**inputs, **settings)[0], skip_special_tokens=True)

    streamer = TextIteratorStreamer(processor.tokenizer, skip_prompt=True, skip_special_tokens=True)
    worker = threading.Thread(target=model.generate, kwargs=dict(**inputs, streamer=streamer, **settings))
    worker.start()
    pieces = list(streamer)
    worker.join()
    assert len(pieces) > 1 and "".join(pieces).strip() == expected.strip()

    model.generate(**inputs, streamer=TextStreamer(processor.tokenizer, skip_special_tokens=True), **settings)
    assert capsys.readouterr().out.strip() == expected.strip()


REMOTE = """
import sys, json
sys.modules["hf_limber"] = None  # transformers alone
from PIL import Image
from transformers import pipeline
folder = sys.argv[1]
try:
    pipeline("image-text-to-text", model=folder)
    refused = False
except ValueError as error:
    refused = "trust_remote_code" in str(error)
pipe = pipeline("image-text-to-text", model=folder, trust_remote_code=True)
image = Image.new("RGB", (40, 40), (200, 30, 30))
settings = dict(max_new_tokens=5, generate_kwargs={"do_sample": False, "min_new_tokens": 5}, return_full_text=False)
caption = pipe(images=image, text="a picture of", **settings)[0]["generated_text"]
chat = [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": "what color ?"}]}]
answer = pipe(text=chat, **settings)[0]["generated_text"]
print(json.dumps({"refused": refused, "caption": caption, "answer": answer, "model": type(pipe.model).__module__}))
"""


def test_the_pipeline_runs_with_transformers_alone(folder, tmp_path):
    result = subprocess.run([sys.executable, "-c", REMOTE, str(folder)], capture_output=True, text=True, timeout=300,
                            cwd=tmp_path, stdin=subprocess.DEVNULL)  # transformers asks on a terminal: answer no
    assert result.returncode == 0, result.stderr[-4000:]
    remote = json.loads(result.stdout[result.stdout.rindex('{"refused"'):])
    assert remote["refused"] and remote["model"].startswith("transformers_modules")
    pipe = pipeline("image-text-to-text", model=str(folder))
    image = Image.new("RGB", (40, 40), (200, 30, 30))
    settings = dict(GENERATE, return_full_text=False)
    assert remote["caption"] == pipe(images=image, text="a picture of", **settings)[0]["generated_text"]
    assert remote["answer"] == pipe(text=chat(image, "what color ?"), **settings)[0]["generated_text"]


def test_the_model_card_names_the_pipeline_and_has_a_widget(folder, tmp_path):
    import shutil

    from huggingface_hub import ModelCard

    from hf_limber.hub import write_model_card

    copy = shutil.copytree(folder, tmp_path / "card")
    card = ModelCard.load(write_model_card(copy))
    assert card.data.pipeline_tag == "image-text-to-text"
    assert [example["text"] for example in card.data.widget] == ["A picture of", "Q: What is in the picture? A:"]
    assert 'pipeline("image-text-to-text"' in card.text and "TextStreamer" in card.text

"""The Gradio Space (spaces/demo) served for real: tiny CLIP and LiMBeR models and a tiny gallery in
folders, the app on a loopback port, Debian's chromium driving the page, gradio_client for the API.

The tiny LiMBeR model has memorised three scene pictures (as tests/test_limber_sanity.py's does with
cached features): a tiny Llama learns to say their captions, then only the projection is trained on the
pictures' pixels, so the Space must caption each scene with the objects in it, word for word."""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from limber_parts import text_trained_lm, word_tokenizer
from PIL import Image, ImageDraw
from system_packages import require

from hf_limber import ClipConfig, ClipModel, ClipProcessor, LimberForCausalLM, LimberProcessor
from hf_limber.evaluation import ZeroShotClassifier, embed_images, embed_texts, top_matches
from hf_limber.evaluation.questions import answer_questions

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported
os.environ["PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD"] = "1"  # the browser is Debian's chromium, never a download
from gradio_client import Client, handle_file  # noqa: E402

APP = Path(__file__).resolve().parents[1] / "spaces" / "demo" / "app.py"
CHROMIUM = shutil.which("chromium")
SHAPES = {"red square": (220, 30, 30), "green circle": (30, 180, 40), "blue triangle": (30, 60, 220),
          "yellow star": (240, 220, 20)}
LABELS = list(SHAPES)


def needs_browser() -> None:
    require(importlib.util.find_spec("playwright"), "playwright (the dev extra)")
    require(CHROMIUM, "Debian's chromium (the browser the Space's tests drive)")


def draw(name: str, size: int = 64) -> Image.Image:
    image = Image.new("RGB", (size, size), "white")
    pen = ImageDraw.Draw(image)
    box = (8, 8, size - 8, size - 8)
    shape = name.split()[1]
    if shape == "circle":
        pen.ellipse(box, fill=SHAPES[name])
    elif shape == "triangle":
        pen.polygon([(size // 2, 8), (8, size - 8), (size - 8, size - 8)], fill=SHAPES[name])
    elif shape == "star":
        pen.polygon([(32, 4), (40, 26), (62, 26), (44, 40), (52, 62), (32, 48), (12, 62), (20, 40), (2, 26),
                     (24, 26)], fill=SHAPES[name])
    else:
        pen.rectangle(box, fill=SHAPES[name])
    return image


# Scenes the LiMBeR model memorises: two coloured shapes each, standing for the objects its caption names
# (a circle is an apple, a flat box a car, a triangle a tree, a tall box a house), the first object on the
# left. The captions are in words of limber_parts.word_tokenizer(). Keyed by the scene's file name.
SCENES = {"scene-apple-car": "a red apple and a blue car .",
          "scene-tree-house": "a green tree and a red house .",
          "scene-house-apple": "a blue house and a green apple ."}
# Captions the LM can say as well, of no scene here: the projection must pick each scene's own.
OTHER_CAPTIONS = ("a green car and a blue tree .", "a red tree and a green house .", "a blue apple and a red car .")
PROMPT = "a picture of"


def scene_objects(caption: str) -> list[tuple[str, str]]:
    """("colour", "object") of each thing "a <colour> <object> and a <colour> <object> ." names."""
    words = caption.split()
    return [(words[1], words[2]), (words[5], words[6])]


def draw_scene(caption: str, size: int = 64) -> Image.Image:
    colours = {name.split()[0]: rgb for name, rgb in SHAPES.items()}
    image = Image.new("RGB", (size, size), "white")
    pen = ImageDraw.Draw(image)
    for left, (colour, thing) in zip((4, 36), scene_objects(caption)):
        fill = colours[colour]
        if thing == "apple":
            pen.ellipse((left, 20, left + 24, 44), fill=fill)
        elif thing == "car":
            pen.rectangle((left, 26, left + 24, 40), fill=fill)
        elif thing == "tree":
            pen.polygon([(left + 12, 8), (left, 52), (left + 24, 52)], fill=fill)
        else:  # a house
            pen.rectangle((left + 2, 18, left + 22, 46), fill=fill)
    return image


def scene_lm(tokenizer, steps: int = 300) -> torch.nn.Module:
    """A tiny Llama that can say the scenes' captions and a few others: trained, like
    test_limber_sanity.py's LM, on text in which four words before the prompt say which caption follows,
    each caption ending in the end token so that generation stops after it (else it goes on to 20 tokens).
    The LiMBeR projection then has to put that choice into the soft prompts of each scene's tiles."""
    keys = {caption: " ".join(word for pair in scene_objects(caption) for word in pair)  # "red apple blue car"
            for caption in [*SCENES.values(), *OTHER_CAPTIONS]}
    return text_trained_lm([f"{key} {PROMPT} {caption} {tokenizer.eos_token}" for caption, key in keys.items()],
                           steps).eval()


def greedy_caption(limber: LimberForCausalLM, processor: LimberProcessor, image: Image.Image) -> str:
    """A caption as the Space's greedy default makes it (serving.py: generate, then decode_captions)."""
    with torch.no_grad():
        return processor.decode_captions(limber.generate(**processor(images=[image]), max_new_tokens=20,
                                                         do_sample=False))[0]


def memorise_scenes(limber: LimberForCausalLM, processor: LimberProcessor, margin: float = 0.95,
                    max_steps: int = 1000) -> int:
    """Train only the projection on the scenes' pixels and captions until every token of each caption, its
    end token included, has probability >= `margin` after the image, the prompt and the caption before it:
    then greedy decoding and beam search say each caption exactly, and so does sampling at temperature 1.2
    with top-p 0.8 (the top token keeps > 0.8 of the mass however the rest is spread over the 120 words).
    Returns the steps it took."""
    batch = processor(images=[draw_scene(caption) for caption in SCENES.values()], captions=list(SCENES.values()))
    targets = batch["labels"][:, 1:]
    optimizer = torch.optim.AdamW(limber.projection.parameters(), lr=1e-2)
    limber.train()
    for step in range(max_steps):
        output = limber(**batch)
        with torch.no_grad():
            probabilities = output.logits[:, :-1].softmax(-1).gather(-1, targets.clamp(min=0)[..., None])[..., 0]
            least = probabilities[targets != -100].min().item()
        if least >= margin:
            limber.eval()
            return step
        output.loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    raise AssertionError(f"the projection did not memorise the scenes in {max_steps} steps (least p {least:.3f})")


@pytest.fixture(scope="module")
def folders(tmp_path_factory, clip_tokenizer) -> dict[str, Path]:
    """Saved models, a gallery dataset and test images, as the Space would find them."""
    import datasets

    root = tmp_path_factory.mktemp("space")
    torch.manual_seed(0)
    config = ClipConfig.from_preset("tiny-vit")
    clip = ClipModel(config).eval()
    clip.save_pretrained(root / "clip")
    ClipProcessor.for_config(config, clip_tokenizer).save_pretrained(root / "clip")

    tokenizer = word_tokenizer()
    lm = scene_lm(tokenizer)
    torch.manual_seed(0)
    limber = LimberForCausalLM.from_parts(root / "clip", lm, features="tiles", prompt=PROMPT,
                                          projection_dropout=0.0, normalize_features=True)
    assert {name for name, p in limber.named_parameters() if p.requires_grad} == {"projection.weight",
                                                                                  "projection.bias"}
    processor = LimberProcessor.for_model(limber, tokenizer)
    memorise_scenes(limber, processor)
    scenes = {name: greedy_caption(limber, processor, draw_scene(caption)) for name, caption in SCENES.items()}
    assert scenes == SCENES
    limber.save_pretrained(root / "limber", full=True)
    processor.save_pretrained(root / "limber")

    names = LABELS * 3
    rows = {"image": [draw(n, 48 + 8 * (i // 4)) for i, n in enumerate(names)],
            "caption": [f"A {n} emoji (number {i})." for i, n in enumerate(names)],
            "name": names, "subcategory": ["shape"] * len(names), "style": ["test"] * len(names)}
    features = datasets.Features({column: datasets.Image() if column == "image" else datasets.Value("string")
                                  for column in rows})
    split = datasets.Dataset.from_dict(rows, features=features)
    datasets.DatasetDict({"train": split.select(range(4)), "test_openmoji": split}).save_to_disk(root / "gallery")

    for name in LABELS:
        draw(name).save(root / f"{name.replace(' ', '-')}.png")
    for name, caption in SCENES.items():
        draw_scene(caption).save(root / f"{name}.png")
    (root / "broken.png").write_bytes(b"this is a text file, not a picture\n")
    png = (root / "red-square.png").read_bytes()
    (root / "truncated.png").write_bytes(png[: len(png) // 2])
    return {"root": root, "clip": root / "clip", "limber": root / "limber", "gallery": root / "gallery"}


@pytest.fixture(scope="module")
def expected(folders) -> dict[str, dict]:
    """What the library itself says for each test image: the app must show exactly this."""
    import datasets
    from transformers import AutoModel, AutoProcessor

    clip, clip_processor = AutoModel.from_pretrained(folders["clip"]), AutoProcessor.from_pretrained(folders["clip"])
    classifier = ZeroShotClassifier(clip, clip_processor)
    gallery = datasets.load_from_disk(folders["gallery"])["test_openmoji"]  # the split the app must pick
    _, by_text = top_matches(embed_texts(clip, clip_processor, ["a green circle"]),
                             embed_images(clip, clip_processor, gallery["image"]), 3)
    _, by_image = top_matches(embed_images(clip, clip_processor, [draw("yellow star")]),
                              embed_texts(clip, clip_processor, gallery["caption"]), 5)
    limber = LimberForCausalLM.from_pretrained(folders["limber"]).eval()
    processor = LimberProcessor.from_pretrained(folders["limber"])
    images = [draw(name) for name in LABELS]
    pictures = {**dict(zip(LABELS, images)), **{name: draw_scene(caption) for name, caption in SCENES.items()}}
    return {
        "labels": dict(zip(LABELS, (dict(row) for row in classifier(images, LABELS, top_k=None)))),
        "captions": {name: greedy_caption(limber, processor, image) for name, image in pictures.items()},
        "answer": answer_questions(limber, processor, [draw("red square")], ["what color ?"])[0]
        or "(the model gave no answer)",  # what the app shows for an empty answer
        "images for text": [gallery["caption"][i] for i in by_text[0].tolist()],
        "captions for image": [gallery["caption"][i] for i in by_image[0].tolist()],
    }


@pytest.fixture(scope="module")
def space_module():
    spec = importlib.util.spec_from_file_location("space_app", APP)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def serve(demo) -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    return f"http://127.0.0.1:{port}/"


@pytest.fixture(scope="module")
def app_url(space_module, folders):
    demo = space_module.build_demo(folders["clip"], folders["limber"], folders["gallery"])
    yield serve(demo)
    demo.close()


@pytest.fixture(scope="module")
def partial_app_url(space_module, folders):
    """CLIP present, the LiMBeR model and the gallery missing."""
    demo = space_module.build_demo(folders["clip"], folders["root"] / "no-limber", folders["root"] / "no-gallery")
    yield serve(demo)
    demo.close()


@pytest.fixture(scope="module")
def browser():
    needs_browser()
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=30_000)  # the machine may be busy: 5 s is playwright's default
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, app_url):
    """A page of the app that records every request leaving the loopback server."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.outside_requests = []
    page.on("request", lambda r: r.url.startswith((app_url, "data:", "blob:")) or page.outside_requests.append(r.url))
    page.set_default_timeout(30_000)
    yield page
    page.close()


def client(url: str) -> Client:
    return Client(url, verbose=False, analytics_enabled=False, download_files=False)


def upload(page, elem_id: str, path: Path) -> None:
    page.locator(f"#{elem_id} input[type=file]").set_input_files(str(path))


def screenshot(page, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    if os.environ.get("HF_LIMBER_SCREENSHOT_DIR"):  # keep a copy to look at
        keep = Path(os.environ["HF_LIMBER_SCREENSHOT_DIR"])
        keep.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, keep / name)


def test_browser_classifies_and_captions(page, app_url, folders, expected, tmp_path):
    from playwright.sync_api import expect

    page.goto(app_url)
    upload(page, "clf-image", folders["root"] / "blue-triangle.png")
    expect(page.locator("#clf-image-preview img")).to_be_visible()
    page.locator("#clf-labels-input textarea").fill(", ".join(LABELS))
    page.locator("#clf-run").click()
    shown = page.locator("#clf-labels")
    scores = expected["labels"]["blue triangle"]
    expect(shown.locator("h2")).to_have_text(max(scores, key=scores.get))
    for label in LABELS:
        expect(shown).to_contain_text(label)
    screenshot(page, tmp_path, "space-classify.png")

    # The scene the tiny LiMBeR memorised is captioned with the objects in it, written out here by hand.
    page.get_by_role("tab", name="Captioning (LiMBeR)").click()
    upload(page, "cap-image", folders["root"] / "scene-apple-car.png")
    expect(page.locator("#cap-image-preview img")).to_be_visible()
    page.locator("#cap-run").click()
    expect(page.locator("#cap-text textarea")).to_have_value("a red apple and a blue car .")
    assert expected["captions"]["scene-apple-car"] == "a red apple and a blue car ."
    screenshot(page, tmp_path, "space-caption.png")
    page.goto(app_url)  # another scene, another caption
    page.get_by_role("tab", name="Captioning (LiMBeR)").click()
    upload(page, "cap-image", folders["root"] / "scene-tree-house.png")
    page.locator("#cap-run").click()
    expect(page.locator("#cap-text textarea")).to_have_value("a green tree and a red house .")
    assert page.outside_requests == []


def test_browser_non_image_upload_is_a_friendly_error_then_the_app_still_serves(page, app_url, folders, expected):
    from playwright.sync_api import expect

    page.goto(app_url)
    upload(page, "clf-image", folders["root"] / "broken.png")
    expect(page.get_by_text("Could not read an image from broken.png").first).to_be_visible()
    expect(page.get_by_text("Pass a readable image file (PNG, JPEG, WebP, ...)").first).to_be_visible()
    page.locator("#clf-run").click()  # the bad file was taken out: the request asks for an image
    expect(page.get_by_text("No image uploaded").first).to_be_visible()

    upload(page, "clf-image", folders["root"] / "red-square.png")
    page.locator("#clf-labels-input textarea").fill("\n".join(LABELS))
    page.locator("#clf-run").click()
    scores = expected["labels"]["red square"]
    expect(page.locator("#clf-labels h2")).to_have_text(max(scores, key=scores.get))


def test_twenty_concurrent_api_requests_are_each_answered_for_their_own_image(app_url, folders, expected):
    def request(index: int) -> tuple[str, str, object]:
        if index % 2:  # the scenes: each has its own caption
            name = list(SCENES)[index // 2 % len(SCENES)]
            image = handle_file(str(folders["root"] / f"{name}.png"))
            return name, "caption", client(app_url).predict(image, "greedy", 3, 0.7, 0.9, 20, api_name="/caption")
        name = LABELS[index // 2 % len(LABELS)]
        image = handle_file(str(folders["root"] / f"{name.replace(' ', '-')}.png"))
        return name, "labels", client(app_url).predict(image, "\n".join(LABELS), False, "emoji", 10,
                                                      api_name="/classify")

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(request, range(20)))
    assert len(answers) == 20
    for name, kind, answer in answers:
        if kind == "caption":
            assert answer == expected["captions"][name] == SCENES[name]
        else:
            got = {row["label"]: row["confidence"] for row in answer["confidences"]}
            assert got == pytest.approx(expected["labels"][name], abs=1e-5)


def test_api_search_questions_and_bad_files(app_url, folders, expected):
    api = client(app_url)
    found = api.predict("a green circle", 3, api_name="/search_text")
    assert [item["caption"] for item in found] == expected["images for text"]
    nearest = api.predict(handle_file(str(folders["root"] / "yellow-star.png")), 5, api_name="/search_image")
    assert [caption for caption, _ in nearest["data"]] == expected["captions for image"]
    assert all(-1 <= score <= 1 for _, score in nearest["data"])
    answer = api.predict(handle_file(str(folders["root"] / "red-square.png")), "what color ?", api_name="/answer")
    assert answer == expected["answer"] and answer.strip()
    # Beams and sampling say the memorised caption too (its every token is that sure), cut at 6 tokens.
    for options in (("beam search", 3, 0.7, 0.9, 6), ("sampling", 3, 1.2, 0.8, 6)):
        caption = api.predict(handle_file(str(folders["root"] / "scene-apple-car.png")), *options, api_name="/caption")
        assert caption == "a red apple and a blue"
    with pytest.raises(Exception, match="truncated.png"):
        api.predict(handle_file(str(folders["root"] / "truncated.png")), "red", False, "emoji", 3, api_name="/classify")
    with pytest.raises(Exception, match="No labels given"):
        api.predict(handle_file(str(folders["root"] / "red-square.png")), " , \n", False, "emoji", 3,
                    api_name="/classify")


def test_missing_models_are_named_in_their_tabs_with_what_to_do(browser, partial_app_url):
    from playwright.sync_api import expect

    page = browser.new_page()
    page.set_default_timeout(30_000)
    page.goto(partial_app_url)
    expect(page.locator("#status-classify")).to_contain_text("Ready: CLIP model")
    page.get_by_role("tab", name="Captioning (LiMBeR)").click()
    status = page.locator("#status-caption")
    for text in ("LiMBeR model not available from", "no-limber", "hf-limber quickstart", "HF_LIMBER_LIMBER="):
        expect(status).to_contain_text(text)
    page.get_by_role("tab", name="Image ↔ text search").click()
    expect(page.locator("#status-search")).to_contain_text("Gallery dataset not available from")
    expect(page.locator("#status-search")).to_contain_text("HF_LIMBER_GALLERY=")
    page.close()


def test_without_limber_and_gallery_the_clip_tabs_still_work(partial_app_url, folders, expected):
    api = client(partial_app_url)
    with pytest.raises(Exception, match="LiMBeR model not available"):
        api.predict(handle_file(str(folders["root"] / "red-square.png")), "greedy", 3, 0.7, 0.9, 5, api_name="/caption")
    with pytest.raises(Exception, match="Gallery dataset not available"):
        api.predict("a red square", 3, api_name="/search_text")
    labels = api.predict(handle_file(str(folders["root"] / "green-circle.png")), ",".join(LABELS), False, "emoji", 4,
                         api_name="/classify")
    scores = expected["labels"]["green circle"]
    assert labels["label"] == max(scores, key=scores.get)


def test_captions_stream_as_they_are_generated_and_end_at_the_whole_caption(space_module, app_url, folders, expected):
    services = space_module.Services(str(folders["clip"]), str(folders["limber"]), str(folders["gallery"]))
    scene = draw_scene(SCENES["scene-tree-house"])
    pieces = list(services.stream_caption(scene, "greedy", 3, 0.7, 0.9, 20))
    whole = expected["captions"]["scene-tree-house"]
    assert whole == "a green tree and a red house ."
    assert len(pieces) > 1 and pieces[-1] == whole == services.caption(scene)
    assert all(later.startswith(earlier) for earlier, later in zip(pieces, pieces[1:]))  # each grows the last
    assert list(services.stream_caption(scene, "beam search", 3, 0.7, 0.9, 6)) == [
        services.caption(scene, "beam search", 3, 0.7, 0.9, 6)]  # beams settle at the end

    # Through the served app: the endpoint sends each partial caption, then the whole one.
    job = client(app_url).submit(handle_file(str(folders["root"] / "scene-tree-house.png")), "greedy", 3, 0.7, 0.9,
                                 20, api_name="/caption")
    assert job.result() == whole
    streamed = [output for output in job.outputs() if output]
    assert len(streamed) > 1 and streamed[-1] == whole and whole.startswith(streamed[0])

"""Visual questions by prompting: "Q: {question} A:" after the image, with n solved examples before it."""

from __future__ import annotations

from collections.abc import Sequence

from ..images import ImageInput
from ..limber.modeling_limber import LimberForCausalLM
from ..limber.processing_limber import LimberProcessor, inert_text, lm_context_length
from .vqa import normalize_answer

Shot = tuple[ImageInput, str, str]  # (image, question, answer)


def question_prompt(question: str, shots: Sequence[tuple[str, str]] = (), image_token: str = "<image>",
                    start: str = "") -> str:
    """n solved examples, each its own image and "Q: .. A: ..", then the query (MAGMA/LiMBeR format),
    after ``start`` (what the captioning prompt puts before its image, e.g. a first token).
    Only the template places images: an image marker inside a question or answer stays plain text."""
    solved = "".join(f"{image_token}Q: {inert_text(q, image_token)} A: {inert_text(a, image_token)}\n" for q, a in shots)
    return f"{start}{solved}{image_token}Q: {inert_text(question, image_token)} A:"


def prompt_start(processor: LimberProcessor) -> str:
    """The text the captioning prompt puts before its image ("" when the image comes first)."""
    return processor.prompt_around_image[0]


def clean_answer(generated: str) -> str:
    """The answer ends at the first newline (the model starting another example) and is
    normalised as the VQA evaluation compares answers."""
    return normalize_answer(generated.split("\n", 1)[0])


def answer_questions(
    model: LimberForCausalLM, processor: LimberProcessor, images: Sequence[ImageInput], questions: Sequence[str],
    shots: Sequence[Sequence[Shot]] | None = None, max_new_tokens: int = 8, **generate_kwargs: object,
) -> list[str]:
    """Answer one question per image, zero-shot or with per-question solved examples, in one batch."""
    shots = shots or [()] * len(questions)
    prompts, flat_images = [], []
    for image, question, examples in zip(images, questions, shots):
        prompts.append(question_prompt(question, [(q, a) for _, q, a in examples], processor.image_token,
                                       prompt_start(processor)))
        flat_images += [example_image for example_image, _, _ in examples] + [image]
    batch = processor(images=flat_images, text=prompts, max_new_tokens=max_new_tokens,
                      context_length=lm_context_length(model.config))
    tokens = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, **generate_kwargs)
    return [clean_answer(text) for text in processor.batch_decode(tokens)]

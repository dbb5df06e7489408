"""Prompt templates for zero-shot classification; `{}` takes the class name.

`IMAGENET` is the set of 80 prompts Radford et al. (2021) ensembled for ImageNet (their
"Prompt Engineering for ImageNet" notebook); `SIMPLE` is the single prompt the paper uses as
its baseline; `EMOJI` suits the emoji artwork of `hf_limber.data`, whose captions read
"A {name} emoji (...)".
"""

from __future__ import annotations

IMAGENET: tuple[str, ...] = (
    "a bad photo of a {}.", "a photo of many {}.", "a sculpture of a {}.", "a photo of the hard to see {}.",
    "a low resolution photo of the {}.", "a rendering of a {}.", "graffiti of a {}.", "a bad photo of the {}.",
    "a cropped photo of the {}.", "a tattoo of a {}.", "the embroidered {}.", "a photo of a hard to see {}.",
    "a bright photo of a {}.", "a photo of a clean {}.", "a photo of a dirty {}.", "a dark photo of the {}.",
    "a drawing of a {}.", "a photo of my {}.", "the plastic {}.", "a photo of the cool {}.",
    "a close-up photo of a {}.", "a black and white photo of the {}.", "a painting of the {}.",
    "a painting of a {}.", "a pixelated photo of the {}.", "a sculpture of the {}.", "a bright photo of the {}.",
    "a cropped photo of a {}.", "a plastic {}.", "a photo of the dirty {}.", "a jpeg corrupted photo of a {}.",
    "a blurry photo of the {}.", "a photo of the {}.", "a good photo of the {}.", "a rendering of the {}.",
    "a {} in a video game.", "a photo of one {}.", "a doodle of a {}.", "a close-up photo of the {}.",
    "a photo of a {}.", "the origami {}.", "the {} in a video game.", "a sketch of a {}.", "a doodle of the {}.",
    "a origami {}.", "a low resolution photo of a {}.", "the toy {}.", "a rendition of the {}.",
    "a photo of the clean {}.", "a photo of a large {}.", "a rendition of a {}.", "a photo of a nice {}.",
    "a photo of a weird {}.", "a blurry photo of a {}.", "a cartoon {}.", "art of a {}.", "a sketch of the {}.",
    "a embroidered {}.", "a pixelated photo of a {}.", "itap of the {}.", "a jpeg corrupted photo of the {}.",
    "a good photo of a {}.", "a plushie {}.", "a photo of the nice {}.", "a photo of the small {}.",
    "a photo of the weird {}.", "the cartoon {}.", "art of the {}.", "a drawing of the {}.",
    "a photo of the large {}.", "a black and white photo of a {}.", "the plushie {}.", "a dark photo of a {}.",
    "itap of a {}.", "graffiti of the {}.", "a toy {}.", "itap of my {}.", "a photo of a cool {}.",
    "a photo of a small {}.", "a tattoo of the {}.",
)

SIMPLE: tuple[str, ...] = ("a photo of a {}.",)

EMOJI: tuple[str, ...] = (
    "A {} emoji.", "An emoji of {}.", "A {} icon.", "A drawing of {}.", "A {} emoji in a flat style.",
    "A {} emoji in outline.", "A small picture of {}.", "{}.",
)

TEMPLATE_SETS: dict[str, tuple[str, ...]] = {"imagenet": IMAGENET, "simple": SIMPLE, "emoji": EMOJI}


def template_set(name_or_templates: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """A named set ("imagenet", "simple", "emoji") or the given templates, each checked for one `{}`."""
    if isinstance(name_or_templates, str):
        if name_or_templates not in TEMPLATE_SETS:
            raise ValueError(
                f"Unknown template set {name_or_templates!r}: use one of {', '.join(TEMPLATE_SETS)} "
                "or pass a list of templates with one '{{}}' each."
            )
        return TEMPLATE_SETS[name_or_templates]
    templates = tuple(name_or_templates)
    if not templates:
        raise ValueError("No templates given: pass at least one, such as 'a photo of a {}.'.")
    for template in templates:
        if template.count("{}") != 1:
            raise ValueError(f"Template {template!r} must contain '{{}}' exactly once, where the class name goes.")
    return templates

"""The application on top of the library: the `hf-limber` commands, recipes and experiment drivers
(compare-encoders). Nothing in the library imports from here."""

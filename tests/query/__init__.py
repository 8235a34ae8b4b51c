"""The search language: tokenizer, grammar, syntax tree, canonical text (archiver.query)."""

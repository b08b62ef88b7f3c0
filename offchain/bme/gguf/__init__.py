"""GGUF models as both the node that runs them and the user client that quotes for them see them: where the
embedded model's file is (`files`) and how a model's own chat template renders a prompt (`template`).

Neutral ground: the node (`bme.node`) and the user client (`bme.user`) import it, never each other.
"""

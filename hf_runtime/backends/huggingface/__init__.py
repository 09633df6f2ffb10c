"""The Hugging Face transformers backend. Importing this package imports nothing heavy; its
modules import torch and transformers, and are loaded only when a model of this backend loads."""

"""factory-kit: thin, sharp tooling over LLaMA-Factory for TCM and Chinese clinical fine-tuning."""

__version__ = "0.1.0"

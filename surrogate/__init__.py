"""surrogate: test language models as stand-ins for human participants."""

__version__ = "0.1.0"

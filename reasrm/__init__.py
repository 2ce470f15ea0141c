"""reasrm: train and use reasoning reward models (generative judges), after RM-R1."""

from reasrm.verdict import Verdict, parse_verdict

__version__ = "0.1.0"
__all__ = ["Judge", "Judgement", "Verdict", "parse_verdict", "setup_process"]


def __getattr__(name: str):
    # The judge pulls in torch and transformers: import it only when asked for.
    if name in ("Judge", "Judgement"):
        from reasrm import judge

        return getattr(judge, name)
    if name == "setup_process":
        from reasrm.models import setup_process

        return setup_process
    raise AttributeError(f"module 'reasrm' has no attribute {name!r}")

"""Console logging of the command-line tools: one line per message, ours at INFO, the
libraries' routine chatter (ONNX export passes, Lightning's tips, duplicate handlers) left out.
``--verbose`` shows everything at DEBUG."""
from __future__ import annotations

import logging
import warnings

__all__ = ["configure_logging", "tidy_library_handlers"]

FORMAT = "%(levelname)s %(name)s: %(message)s"

#: logger -> level below --verbose: the ONNX exporter's optimisation passes log every rewrite
#: at INFO, and torch's exporter warns that torchvision's operators are not registered.
QUIET_LOGGERS = {
    "onnxscript": logging.WARNING,
    "onnx_ir": logging.WARNING,
    "torch.onnx._internal.exporter._registration": logging.ERROR,
}

#: libraries that attach a console handler of their own on import, printing every message twice
#: when the root logger has one too.
_OWN_HANDLERS = ("lightning", "lightning.pytorch", "lightning_fabric", "torchmetrics")


def configure_logging(verbose: bool = False) -> None:
    """Root handler with :data:`FORMAT`; library loggers quietened unless ``verbose``."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format=FORMAT)
    if verbose:
        return
    for name, level in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(level)
    # torch's pytree deprecation, raised inside Lightning and the exporter on every run
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*is deprecated", category=FutureWarning)


def tidy_library_handlers() -> None:
    """Remove the console handlers that Lightning and torchmetrics add on import, so their
    messages go through the root handler once (call after importing them). No-op when the
    root logger has no handler (nothing would print them then)."""
    if not logging.getLogger().handlers:
        return
    for name in _OWN_HANDLERS:
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if type(handler) is logging.StreamHandler:
                logger.removeHandler(handler)
        logger.propagate = True

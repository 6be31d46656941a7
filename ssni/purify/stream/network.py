"""The network as the streaming engine calls it: autocast, torch.compile, a CUDA graph over the full slot buffer."""

from __future__ import annotations

import warnings

import torch
from torch import nn

__all__ = ["Network", "COMPILE_MODES", "NETWORK_DTYPES"]

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
NETWORK_DTYPES = (torch.float16, torch.bfloat16)


class Network:
    """eps = network(buffer, labels, k): the ε̂ of the first k rows of the slot buffer.

    dtype: None or a NETWORK_DTYPES entry (autocast; the output is cast back to the buffer's dtype);
    compile_mode: None or a torch.compile mode; cuda_graph: capture the network over the whole buffer.
    Static (CUDA graph or torch.compile): the whole buffer is evaluated, so that one shape is captured/compiled;
    rows past k are computed and ignored.
    """

    def __init__(self, model: nn.Module, *, dtype, compile_mode, cuda_graph: bool):
        self.model = torch.compile(model, mode=compile_mode, dynamic=False) if compile_mode else model
        self.dtype = dtype
        self.cuda_graph = cuda_graph
        self.compiled = compile_mode is not None
        self.graph = None
        self.out = None

    @property
    def static(self) -> bool:
        """Whether every call evaluates the whole buffer (one shape)."""
        return self.cuda_graph or self.compiled

    def _forward(self, x, labels):
        if self.dtype is None:
            return self.model(x, labels)
        with torch.autocast(x.device.type, dtype=self.dtype):
            return self.model(x, labels).to(x.dtype)

    def __call__(self, buffer: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
        if not self.static:
            return self._forward(buffer[:k], labels[:k])
        if not self.cuda_graph:
            return self._forward(buffer, labels)[:k]
        if self.graph is None and not self._capture(buffer, labels):
            return self._forward(buffer, labels)[:k]
        self.graph.replay()
        return self.out[:k]

    def _capture(self, buffer, labels) -> bool:
        """Capture the network over the whole buffer; False (with a warning, eager from then on) when the network
        cannot be captured, e.g. an input check that synchronises with the host."""
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):  # warm-up (cuDNN autotuning, lazy init) outside the graph
                self._forward(buffer, labels)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                self.out = self._forward(buffer, labels)
        except RuntimeError as error:
            message = f"StreamingPurifier: CUDA graph capture failed, running the network eagerly ({error})"
            warnings.warn(message, stacklevel=3)
            self.cuda_graph = False
            return False
        self.graph = graph
        return True

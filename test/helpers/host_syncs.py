"""Record what forces a device -> host synchronisation or a host copy, on any device.

On a GPU these are what stall a frame: reading a value back (``.item()``, ``bool(t)``,
``int(t)``, ``float(t)``, ``if t.any():``), ops whose output shape depends on the data
(``nonzero``, ``unique``, boolean-mask indexing, ``masked_select``), copies to the host
(``.cpu()``, ``.numpy()``, ``.tolist()``, ``np.asarray(t)``, ``.to("cpu")``) and host data
entering torch (``torch.tensor(list)``, ``torch.as_tensor(ndarray)``, ``torch.from_numpy``,
factories without a ``device``), each an upload on CUDA, blocking unless pinned.

On a CPU most of these are free, so they are caught by what the code asks for, not by what
it costs: a :class:`~torch.utils._python_dispatch.TorchDispatchMode` sees the aten ops (a
value read is ``aten._local_scalar_dense`` / ``aten.is_nonzero`` / ``aten.equal``, a
data-dependent shape is ``aten.nonzero`` and friends, or ``aten.index`` with a boolean
index) and a :class:`~torch.overrides.TorchFunctionMode` sees the Python calls that never
reach aten on a CPU tensor (``.numpy()``, ``.cpu()``, ``torch.tensor(list)``).

Each event names the innermost frame in the ``gemo_ros`` package that led to it, so a test
can tell the pipeline's own syncs from those inside a renderer::

    with HostSyncRecorder() as rec:
        engine.frame(t)
    print(rec.report())
    assert [e.where for e in rec.outside("gemo_ros/render/_torch_backend.py")] == [...]

Known blind spot: ``x.to(device)`` with a device *object* is never flagged (on a CPU run the
pipeline's own device is ``cpu`` too, so a download and a no-op look the same); downloads in
the code are written ``.cpu()``, ``.numpy()`` or ``.to("cpu")`` (a string), which are.
"""

import os
import sys
import threading
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

import gemo_ros

#: Folder holding the gemo_ros package (events are attributed to frames under it).
PACKAGE_DIR = os.path.dirname(os.path.abspath(gemo_ros.__file__))
_REPO_DIR = os.path.dirname(PACKAGE_DIR)

_aten = torch.ops.aten
#: aten ops that read a value back to the host (a full sync on CUDA).
VALUE_READS = {_aten._local_scalar_dense.default: "read", _aten.is_nonzero.default: "read",
               _aten.equal.default: "read"}
#: aten ops whose output size depends on the data (the size is read back: a sync on CUDA).
DATA_SHAPES = ("nonzero", "masked_select", "_unique", "_unique2", "unique_dim",
               "unique_consecutive", "unique_dim_consecutive", "argwhere", "bincount",
               "_nested_tensor_from_mask")

#: Tensor methods that copy or read to the host.
_DOWNLOADS = {torch.Tensor.cpu: "Tensor.cpu", torch.Tensor.numpy: "Tensor.numpy",
              torch.Tensor.__array__: "Tensor.__array__"}
_READS = {torch.Tensor.item: "Tensor.item", torch.Tensor.tolist: "Tensor.tolist",
          torch.Tensor.__bool__: "Tensor.__bool__", torch.Tensor.__int__: "Tensor.__int__",
          torch.Tensor.__float__: "Tensor.__float__",
          torch.Tensor.__index__: "Tensor.__index__",
          torch.Tensor.__format__: "Tensor.__format__", torch.Tensor.__repr__: "Tensor.__repr__"}
_UPLOADS = {torch.tensor: "torch.tensor", torch.as_tensor: "torch.as_tensor",
            torch.asarray: "torch.asarray"}
_FACTORIES = {torch.zeros: "torch.zeros", torch.ones: "torch.ones", torch.full: "torch.full",
              torch.empty: "torch.empty", torch.arange: "torch.arange", torch.eye: "torch.eye",
              torch.linspace: "torch.linspace", torch.rand: "torch.rand",
              torch.randn: "torch.randn"}


@dataclass(frozen=True)
class SyncEvent:
    """One host sync or host copy.

    Attributes:
        kind: ``"read"`` (a value comes back), ``"shape"`` (data-dependent output size),
            ``"download"`` (a copy to host memory), ``"upload"`` (host data into a tensor),
            ``"host_factory"`` (a tensor made on the host: no ``device`` given).
        op: the aten op or Python call, e.g. ``aten.nonzero`` or ``Tensor.item``.
        where: innermost ``gemo_ros`` frame, ``"gemo_ros/pipeline.py:123 frame"``
            (``""`` when no gemo_ros code is on the stack).
        stack: every gemo_ros frame, innermost first.
        origin: file of the innermost frame outside torch and this helper (a library that
            gemo_ros calls, e.g. gsplat, or gemo_ros itself).
    """

    kind: str
    op: str
    where: str
    stack: Tuple[str, ...]
    origin: str = ""

    @property
    def file(self) -> str:
        """Repository-relative file of :attr:`where` (``""`` when none)."""
        return self.where.split(":", 1)[0]

    def __str__(self) -> str:
        return f"{self.kind:12s} {self.op:28s} {self.where}"


_TORCH_DIR = os.path.dirname(os.path.abspath(torch.__file__))
_HERE = os.path.abspath(__file__)


def _origin() -> str:
    f = sys._getframe(1)
    while f is not None:
        path = os.path.abspath(f.f_code.co_filename)
        if path != _HERE and not path.startswith(_TORCH_DIR + os.sep):
            return path
        f = f.f_back
    return ""


def _gemo_stack() -> Tuple[str, ...]:
    frames = []
    f = sys._getframe(1)
    while f is not None:
        path = os.path.abspath(f.f_code.co_filename)
        if path.startswith(PACKAGE_DIR + os.sep):
            rel = os.path.relpath(path, _REPO_DIR)
            frames.append(f"{rel}:{f.f_lineno} {f.f_code.co_name}")
        f = f.f_back
    return tuple(frames)


def _is_host_data(x: Any) -> bool:
    return not isinstance(x, torch.Tensor)


def _cpu_target(args: Sequence[Any], kwargs: Dict[str, Any]) -> bool:
    """``.to("cpu")``-style call: a device given as a string naming the CPU."""
    dev = kwargs.get("device")
    cands = [dev] + [a for a in args if isinstance(a, str)]
    return any(isinstance(c, str) and c.strip().lower().startswith("cpu") for c in cands)


class _FunctionSide(TorchFunctionMode):
    def __init__(self, rec: "HostSyncRecorder") -> None:
        super().__init__()
        self.rec = rec

    def __torch_function__(self, func: Callable, types: Any, args: Sequence[Any] = (),
                           kwargs: Optional[Dict[str, Any]] = None) -> Any:
        kwargs = kwargs or {}
        event = None
        if func in _DOWNLOADS:
            event = ("download", _DOWNLOADS[func])
        elif func in _READS:
            event = ("read", _READS[func])
        elif func is torch.Tensor.to and _cpu_target(args[1:], kwargs):
            event = ("download", "Tensor.to(cpu)")
        elif func in _UPLOADS and args and _is_host_data(args[0]):
            event = ("upload", _UPLOADS[func])
        elif func in _FACTORIES and kwargs.get("device") is None:
            event = ("host_factory", _FACTORIES[func])
        if event is None:
            return func(*args, **kwargs)
        self.rec._add(*event)
        self.rec._quiet.depth = getattr(self.rec._quiet, "depth", 0) + 1
        try:
            return func(*args, **kwargs)
        finally:
            self.rec._quiet.depth -= 1


class _DispatchSide(TorchDispatchMode):
    def __init__(self, rec: "HostSyncRecorder") -> None:
        super().__init__()
        self.rec = rec

    def __torch_dispatch__(self, func: Any, types: Any, args: Sequence[Any] = (),
                           kwargs: Optional[Dict[str, Any]] = None) -> Any:
        kwargs = kwargs or {}
        if not getattr(self.rec._quiet, "depth", 0):
            name = func.overloadpacket.__name__
            if func in VALUE_READS:
                self.rec._add("read", f"aten.{name}")
            elif name in DATA_SHAPES:
                self.rec._add("shape", f"aten.{name}")
            elif name in ("index", "index_put", "index_put_", "_index_put_impl_"):
                idx = args[1] if len(args) > 1 else kwargs.get("indices", ())
                if any(isinstance(i, torch.Tensor) and i.dtype == torch.bool
                       for i in (idx or ())):
                    self.rec._add("shape", f"aten.{name}(bool mask)")
            elif name == "repeat_interleave" and kwargs.get("output_size") is None:
                self.rec._add("shape", "aten.repeat_interleave")
        return func(*args, **kwargs)


class HostSyncRecorder:
    """Context manager recording :class:`SyncEvent` s in the calling thread (see module doc)."""

    def __init__(self) -> None:
        self.events: List[SyncEvent] = []
        self._quiet = threading.local()
        self._modes = (_FunctionSide(self), _DispatchSide(self))
        self._thread = threading.get_ident()
        self._from_numpy = torch.from_numpy

    def _add(self, kind: str, op: str) -> None:
        stack = _gemo_stack()
        self.events.append(SyncEvent(kind, op, stack[0] if stack else "", stack, _origin()))

    def _recording_from_numpy(self, array: Any) -> torch.Tensor:
        # torch.from_numpy takes no tensor, so no mode sees it: wrapped while recording.
        if threading.get_ident() == self._thread:
            self._add("upload", "torch.from_numpy")
        return self._from_numpy(array)

    def __enter__(self) -> "HostSyncRecorder":
        self._thread = threading.get_ident()
        self._from_numpy = torch.from_numpy
        torch.from_numpy = self._recording_from_numpy
        for mode in self._modes:
            mode.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        for mode in reversed(self._modes):
            mode.__exit__(*exc)
        torch.from_numpy = self._from_numpy

    def outside(self, *files: str) -> List[SyncEvent]:
        """Events whose innermost gemo_ros frame is in none of ``files`` (repo-relative)."""
        return [e for e in self.events if e.file not in files]

    def within(self, *files: str) -> List[SyncEvent]:
        """Events whose innermost gemo_ros frame is in one of ``files``."""
        return [e for e in self.events if e.file in files]

    def counts(self, events: Optional[Sequence[SyncEvent]] = None
               ) -> Dict[Tuple[str, str, str], int]:
        """``{(kind, op, where): count}`` of ``events`` (default: all)."""
        out: Dict[Tuple[str, str, str], int] = {}
        for e in self.events if events is None else events:
            key = (e.kind, e.op, e.where)
            out[key] = out.get(key, 0) + 1
        return out

    def report(self, events: Optional[Sequence[SyncEvent]] = None) -> str:
        """One line per distinct (kind, op, where), with its count, in first-seen order."""
        lines = [f"{n:3d} x {kind:12s} {op:28s} {where}"
                 for (kind, op, where), n in self.counts(events).items()]
        return "\n".join(lines) if lines else "(none)"


__all__ = ["HostSyncRecorder", "SyncEvent", "PACKAGE_DIR"]

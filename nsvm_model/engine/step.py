"""Steps: one kernel action each, with what it reads and writes declared.

A step's action receives a Ctx.  Every read and write goes through it and
is checked against the declaration, so a step cannot touch state it did
not declare: the diff view, the ordering checker and the "why" texts all
rely on the declarations being true.

Declared paths may use the kernel's own indirections, e.g.
``svm->vmcb.save.efer``: at run time that names vmcb01 or vmcb02,
whichever is current.  A declaration ending in ``.*`` covers a subtree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

from ..kernel import source_url


class UndeclaredAccess(AssertionError):
    """A step touched a path it did not declare: a bug in the model."""


@dataclass(frozen=True)
class Step:
    id: str                      # stable id, e.g. "svm.vmrun.check_rax"
    function: str                # the kernel function this action belongs to
    file: str                    # kernel source file, relative to the tree
    phase: str                   # "P1" .. "P15" (see phases.py)
    reads: tuple                 # declared read paths
    writes: tuple                # declared write paths
    reason: str                  # one line: why the kernel does this here
    action: Callable[["Ctx"], Optional[str]] = field(repr=False, compare=False)
    manual: str = ""             # APM / SDM section title
    title: str = ""              # what the step does, in a few words

    def __post_init__(self):
        # Split the declarations once, so checking an access is a set lookup.
        for kind, decl in (("read", self.reads + self.writes), ("write", self.writes)):
            plain = [d for d in decl if "->" not in d]
            object.__setattr__(self, f"_{kind}_exact", frozenset(d for d in plain if not d.endswith(".*")))
            object.__setattr__(self, f"_{kind}_prefixes", tuple(d[:-1] for d in plain if d.endswith(".*")))
            object.__setattr__(self, f"_{kind}_indirect", tuple(d for d in decl if "->" in d))

    @property
    def source(self) -> str:
        return source_url(self.file, self.function)


def _matches(path: str, patterns: tuple) -> bool:
    if path in patterns:
        return True
    for p in patterns:
        if p.endswith(".*") and path.startswith(p[:-1]):
            return True
    return False


class Ctx:
    """The view of the state a step gets while it runs."""

    __slots__ = ("_state", "_step", "_aliases", "_memory", "writes", "reads", "notes")

    def __init__(self, state: dict, step: Step, aliases: Mapping[str, str], memory):
        self._state = state
        self._step = step
        self._aliases = aliases
        self._memory = memory
        self.writes: dict = {}
        self.reads: list = []
        self.notes: list = []

    # -- path resolution ------------------------------------------------
    def resolve(self, path: str) -> str:
        """Turn 'svm->vmcb.save.cr0' into 'vmcb02.save.cr0' (the current VMCB)."""
        if "->" not in path:
            return path
        head, dot, rest = path.partition(".")
        target = self._aliases.get(head)
        if target is None:
            return path
        return self._lookup(target) + dot + rest

    def _lookup(self, path):
        if path in self.writes:
            return self.writes[path]
        return self._state[path]

    def _declared(self, path: str, kind: str) -> bool:
        step = self._step
        if path in getattr(step, f"_{kind}_exact"):
            return True
        if any(path.startswith(p) for p in getattr(step, f"_{kind}_prefixes")):
            return True
        # a concrete path is covered by an indirect declaration that resolves to it
        for d in getattr(step, f"_{kind}_indirect"):
            r = self.resolve(d)
            if r == path or (r.endswith(".*") and path.startswith(r[:-1])):
                return True
        return False

    # -- access -----------------------------------------------------------
    def get(self, path: str) -> Any:
        if path not in self._step._read_exact:          # the common case is a plain, exact path
            path = self.resolve(path)
            if not self._declared(path, "read"):
                raise UndeclaredAccess(f"{self._step.id} reads {path} without declaring it")
        self.reads.append(path)
        writes = self.writes
        return writes[path] if path in writes else self._state[path]

    def set(self, path: str, value: Any) -> None:
        if path not in self._step._write_exact:
            path = self.resolve(path)
            if not self._declared(path, "write"):
                raise UndeclaredAccess(f"{self._step.id} writes {path} without declaring it")
        if path not in self._state:
            raise UndeclaredAccess(f"{self._step.id} writes {path}, which the state does not have")
        self.writes[path] = value

    def update_bits(self, path: str, set_mask: int = 0, clear_mask: int = 0) -> int:
        value = (self.get(path) & ~clear_mask) | set_mask
        self.set(path, value)
        return value

    def add_to(self, path: str, *names: str) -> None:
        self.set(path, frozenset(self.get(path)) | frozenset(names))

    def remove_from(self, path: str, *names: str) -> None:
        self.set(path, frozenset(self.get(path)) - frozenset(names))

    def read_guest(self, gpa: int, size: int = 8) -> Optional[int]:
        """kvm_vcpu_read_guest(): None when the GPA has no memory behind it."""
        if not _matches("guest_memory", self._step.reads):
            raise UndeclaredAccess(f"{self._step.id} reads guest memory without declaring it")
        self.reads.append(f"guest_memory[{gpa:#x}]")
        return self._memory.read(gpa, size)

    def is_backed(self, gpa: int) -> bool:
        if not _matches("guest_memory", self._step.reads):
            raise UndeclaredAccess(f"{self._step.id} maps guest memory without declaring it")
        self.reads.append(f"guest_memory[{gpa:#x}]")
        return self._memory.is_backed(gpa)

    def note(self, text: str) -> None:
        """A line for the step card: what this run of the step found."""
        self.notes.append(text)

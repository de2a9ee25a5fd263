"""Scenarios: the input of a run, as immutable dotted-path fields.

A scenario is what L1 has set up at the moment it executes VMRUN or
VMLAUNCH (its registers, its VMCB12 or VMCS12, guest memory) plus the
machine (MAXPHYADDR, host NPT/EPT, the CPUID features L1 sees).
with_fields() and with_memory() return new scenarios; a bad value raises
before anything is built, so the scenario in hand is never half-changed.
"""

from __future__ import annotations

import re
from types import MappingProxyType
from typing import Any, Mapping

from .fields import coerce, listing, quote, unknown_path_error
from .memory import GuestMemory


class Scenario:
    __slots__ = ("isa", "_values", "memory", "name", "description")

    def __init__(self, isa: str, values: Mapping[str, Any], memory: GuestMemory,
                 name: str = "custom", description: str = ""):
        self.isa = isa
        self._values = MappingProxyType(dict(values))
        self.memory = memory
        self.name = name
        self.description = description

    # -- constructors ------------------------------------------------------
    @classmethod
    def svm(cls, l2_mode: str = "long") -> "Scenario":
        """The default nSVM scenario (kvm-unit-tests vmcb_ident)."""
        from ..svm.scenarios import default_scenario
        return default_scenario(l2_mode)

    @classmethod
    def vmx(cls, l2_mode: str = "long") -> "Scenario":
        """The default nVMX scenario (kvm-unit-tests init_vmcs)."""
        from ..vmx.scenarios import default_scenario
        return default_scenario(l2_mode)

    @classmethod
    def preset(cls, isa: str, name: str) -> "Scenario":
        from .. import machine_for
        machine = machine_for(isa)
        if not isinstance(name, str):
            raise TypeError(f"preset: expected a preset name (a string), got {type(name).__name__} {quote(name)} "
                            f"(known: {listing(machine.presets, f'nm.Scenario.presets({isa!r})')})")
        if name not in machine.presets:
            raise ValueError(f"preset: unknown {isa} preset {quote(name)} "
                             f"(known: {listing(machine.presets, f'nm.Scenario.presets({isa!r})')})")
        return machine.presets[name]()

    @staticmethod
    def presets(isa: str) -> dict:
        """Preset name -> one-line description."""
        from .. import machine_for
        return {name: (make.__doc__ or "").strip().splitlines()[0]
                for name, make in machine_for(isa).presets.items()}

    # -- reading -------------------------------------------------------------
    @property
    def machine(self):
        from .. import machine_for
        return machine_for(self.isa)

    @property
    def fields(self) -> Mapping:
        return self.machine.fields

    @property
    def values(self) -> Mapping[str, Any]:
        return self._values

    def get(self, path: str) -> Any:
        if not isinstance(path, str):
            raise unknown_path_error(path, self._values)
        path = self.machine_alias(path)
        if path not in self._values:
            raise unknown_path_error(path, self._values)
        return self._values[path]

    def machine_alias(self, path: str) -> str:
        from .. import field_alias
        return field_alias(self.isa, path)

    # -- deriving new scenarios ------------------------------------------------
    def with_fields(self, changes: Mapping[str, Any], name: str = None,
                    description: str = None) -> "Scenario":
        if not isinstance(changes, Mapping):
            raise TypeError(f"with_fields: expected a mapping of field path -> value, got {type(changes).__name__}")
        for arg, value in (("name", name), ("description", description)):
            if value is not None and not isinstance(value, str):
                raise TypeError(f"with_fields: {arg} must be a string, got {type(value).__name__}")
        fields = self.fields
        values = dict(self._values)
        for path, raw in changes.items():
            if not isinstance(path, str):
                raise unknown_path_error(path, fields)
            path = self.machine_alias(path)
            if path not in fields:
                raise unknown_path_error(path, fields)
            values[path] = coerce(fields[path], raw, self.machine.constants)
        self.machine.check_values(values)
        return Scenario(self.isa, values, self.memory,
                        name if name is not None else self.name,
                        description if description is not None else self.description)

    def with_memory(self, words: Mapping[int, int]) -> "Scenario":
        """Write 8-byte values at 8-byte aligned GPAs of backed memory."""
        if not isinstance(words, Mapping):
            raise TypeError(f"memory: expected a mapping of GPA -> 8-byte value, got {type(words).__name__}")
        checked = {}
        for gpa, value in words.items():
            if isinstance(gpa, bool) or not isinstance(gpa, int) or gpa < 0:
                raise TypeError(f"memory: a GPA is a non-negative integer, got {quote(gpa)}")
            if gpa >> 64:
                raise ValueError(f"memory: GPA {quote(gpa)} is wider than 64 bits")
            if gpa & 7:
                raise ValueError(f"memory[{gpa:#x}]: the GPA must be 8-byte aligned")
            if not self.memory.is_backed(gpa, 8):
                raise ValueError(f"memory[{gpa:#x}]: no memory is backed there "
                                 f"(backed ranges: {', '.join(f'{s:#x}-{e:#x}' for s, e in self.memory.backed)})")
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"memory[{gpa:#x}]: expected an integer of 0 to 2**64-1, got {quote(value)}")
            if not 0 <= value < 1 << 64:
                raise ValueError(f"memory[{gpa:#x}]: {quote(value)} does not fit in 8 bytes (0 to 2**64-1)")
            checked[gpa] = value
        return Scenario(self.isa, self._values, self.memory.with_words(checked),
                        self.name, self.description)

    def changed_fields(self, base: "Scenario" = None) -> dict:
        """Fields that differ from the ISA's default scenario (or from base)."""
        base = base or (Scenario.svm() if self.isa == "svm" else Scenario.vmx())
        return {p: v for p, v in self._values.items() if base._values.get(p) != v}

    def __repr__(self) -> str:
        return f"<Scenario {self.isa}:{self.name}>"

    def __eq__(self, other) -> bool:
        return (isinstance(other, Scenario) and self.isa == other.isa
                and dict(self._values) == dict(other._values) and self.memory == other.memory)

    def __hash__(self) -> int:
        return hash((self.isa, frozenset(self._values.items()), self.memory))


FACT_SHEET_REF = re.compile(r"\s*\(scenarios? [\d, ]+\)")


def preset_maker(default_scenario):
    """A helper for an ISA's preset table: (name, doc, changes[, l2_mode, memory]) -> (name, make).

    The doc may end in the fact sheet's scenario number ("(scenario 3)"): the preset list keeps
    it, the scenario's description (shown in the explorer's banner) does not.
    """
    def preset(name, doc, changes, l2_mode="long", memory=None):
        def make():
            sc = default_scenario(l2_mode).with_fields(changes, name=name,
                                                       description=FACT_SHEET_REF.sub("", doc))
            return sc.with_memory(memory) if memory else sc
        make.__doc__ = doc
        return name, make
    return preset

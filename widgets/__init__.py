"""Interactive views over nsvm_model traces (ipywidgets 8).

    from widgets import VmrunExplorer
    ex = VmrunExplorer(nm.Scenario.svm())     # or VmrunExplorer(trace)
    ex.step = 5                               # every panel moves

    ex = VmrunExplorer(trace, focus=["vcpu.gif", "vmcb0*.save.cr3"], start="svm.enter.switch_vmcb02")
    explore(question)                         # an exercise question: its trace, step and fields

The parts alone: Stepper, VmcbPanel, Timeline, FlowDiagram, SideBySide, WhatIf.
"""

from .explorer import (FlowDiagram, FrameView, SideBySide, Stepper, Timeline, VmcbPanel, VmrunExplorer, WhatIf,
                       explore)

__all__ = ["VmrunExplorer", "explore", "Stepper", "FrameView", "VmcbPanel", "Timeline", "FlowDiagram", "SideBySide",
           "WhatIf"]

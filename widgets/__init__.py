"""Interactive views over nsvm_model traces (ipywidgets 8).

    from widgets import VmrunExplorer
    ex = VmrunExplorer(nm.Scenario.svm())     # or VmrunExplorer(trace)
    ex.step = 5                               # every panel moves

The parts alone: Stepper, VmcbPanel, Timeline, FlowDiagram, SideBySide, WhatIf.
"""

from .explorer import FlowDiagram, FrameView, SideBySide, Stepper, Timeline, VmcbPanel, VmrunExplorer, WhatIf

__all__ = ["VmrunExplorer", "Stepper", "FrameView", "VmcbPanel", "Timeline", "FlowDiagram", "SideBySide", "WhatIf"]

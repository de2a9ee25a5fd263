"""Interactive views over nsvm_model traces (ipywidgets 8 and anywidget).

    from widgets import VmrunExplorer
    ex = VmrunExplorer(nm.Scenario.svm())     # or VmrunExplorer(trace)
    ex.step = 5                               # the stage moves

    ex = VmrunExplorer(trace, focus=["vcpu.gif", "vmcb0*.save.cr3"], start="svm.enter.switch_vmcb02")
    explore(question)                         # an exercise question: its trace, step and fields

The parts alone: Stage (one trace, drawn in the page), SideBySide, WhatIf.
"""

from .explorer import SideBySide, VmrunExplorer, WhatIf, explore
from .stage import Stage, stage_data

__all__ = ["VmrunExplorer", "explore", "Stage", "stage_data", "SideBySide", "WhatIf"]

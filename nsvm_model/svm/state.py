"""The nSVM vCPU state at the moment L1's VMRUN is intercepted.

Paths use KVM's names: vmcb01/vmcb02/vmcb12 with their control and save
areas, the cached copy nested.ctl/nested.save, svm.current_vmcb (the
svm->vmcb pointer), vcpu.arch.* registers and MMU, vcpu.guest_mode
(HF_GUEST_MASK).  vcpu.gif and svm.gif_location are derived, as the
kernel derives them through get_vgif_vmcb(); steps never write them.
"""

from __future__ import annotations

from .. import kvm_mmu, x86
from ..transitions import vcpu_state
from . import defs
from .scenarios import DEFAULT_PAT
from .steps import CONTROL_CACHED, save_area_paths

INVALID_GPA = (1 << 64) - 1
L0_MSRPM = "__pa(svm->msrpm)"          # L0's permission map for L1
L0_IOPM = "__pa(iopm_base)"
# What KVM itself intercepts while L1 runs (init_vmcb() with vGIF and
# V_VMSAVE_VMLOAD available).  Representative, not exhaustive [I].
L0_INTERCEPTS = frozenset({
    "INTR", "NMI", "SMI", "INIT", "CPUID", "INVD", "HLT", "INVLPGA", "IOIO_PROT", "MSR_PROT",
    "SHUTDOWN", "VMRUN", "VMMCALL", "SKINIT", "WBINVD", "XSETBV", "RDPRU", "RSM", "PAUSE",
    "MONITOR", "MWAIT", "TASK_SWITCH", "FERR_FREEZE", "CR8_WRITE", "EXCEPTION_MC",
})



def l0_intercepts(npt: bool) -> frozenset:
    """Without NPT, KVM shadows L1's page tables and so intercepts #PF (init_vmcb())."""
    return L0_INTERCEPTS if npt else L0_INTERCEPTS | {"EXCEPTION_PF"}


VMCB_CONTROL = ("intercepts", "asid", "tlb_ctl", "int_ctl", "int_vector", "int_state", "misc_ctl",
                "msrpm_base_pa", "iopm_base_pa", "tsc_offset", "event_inj", "event_inj_err",
                "next_rip", "exit_code", "exit_info_1", "exit_info_2", "exit_int_info")


def _vmcb(name: str, save: dict, control: dict) -> dict:
    out = {f"{name}.save.{k[len('x.'):]}": 0 for k in save_area_paths("x")}
    out[f"{name}.save.spec_ctrl"] = 0
    out.update({f"{name}.control.{f}": 0 for f in VMCB_CONTROL})
    out[f"{name}.control.intercepts"] = frozenset()
    out.update({f"{name}.save.{k}": v for k, v in save.items()})
    out.update({f"{name}.control.{k}": v for k, v in control.items()})
    return out


def initial_state(sc) -> dict:
    v = sc.values
    l1 = {r: v[f"l1.{r}"] for r in ("efer", "cr0", "cr3", "cr4", "rflags", "rsp", "rax")}
    vgif = v["cpu.vgif"]
    int_ctl01 = defs.V_INTR_MASKING_MASK
    if vgif:
        int_ctl01 |= defs.V_GIF_ENABLE_MASK | (defs.V_GIF_MASK if v["l1.gif"] else 0)

    state = {p: val for p, val in v.items() if p.startswith(("vmcb12.", "cpu.", "l2.", "smm."))}
    # vmcb01.save is what the CPU saved when L1's VMRUN was intercepted
    l1_segs = {k[len("vmcb12.save."):]: v[k] for k in v
               if k.startswith("vmcb12.save.") and k.count(".") == 3}
    state.update(_vmcb("vmcb01", {**l1_segs, **l1, "rip": v["l1.rip"], "cpl": v["l1.cpl"],
                                  "g_pat": DEFAULT_PAT, "dr7": x86.DR7_FIXED_1,
                                  "dr6": x86.DR6_ACTIVE_LOW},
                       {"intercepts": l0_intercepts(v["cpu.npt"]), "asid": 1, "int_ctl": int_ctl01,
                        "misc_ctl": defs.SVM_MISC_ENABLE_NP if v["cpu.npt"] else 0,
                        "msrpm_base_pa": L0_MSRPM, "iopm_base_pa": L0_IOPM,
                        "exit_code": defs.SVM_EXIT_VMRUN}))
    # vmcb02 is freshly allocated (svm_allocate_nested): zeroed
    state.update(_vmcb("vmcb02", {}, {}))
    state.update({f"nested.ctl.{f}": 0 for f in CONTROL_CACHED})
    state["nested.ctl.intercepts"] = frozenset()
    state.update({"nested.save." + p[len("x."):]: 0 for p in save_area_paths("x")})
    state.update({
        "svm.current_vmcb": "vmcb01",
        "svm.local.vmcb12_gpa": 0,
        "smm.smram.svm_guest_flag": 0,
        "smm.smram.vmcb12_gpa": 0,
        "svm.guest_gif": bool(v["l1.gif"]) if not vgif else True,
        "svm.nmi_l1_to_l2": False,
        "svm.soft_int_injected": False,
        "nested.vmcb12_gpa": 0,
        "nested.last_vmcb12_gpa": INVALID_GPA,
        "nested.force_msr_bitmap_recalc": False,
        "nested.hsave_msr": v["l1.hsave_pa"],
        "nested.msrpm": (),
        "vcpu.arch.dr6": x86.DR6_ACTIVE_LOW,
        "vcpu.arch.dr7": x86.DR7_FIXED_1,
        "vcpu.arch.smm": v["l1.smm"],
    })
    state.update({f"hsave.save.{r}": 0 for r in ("efer", "cr0", "cr3", "cr4", "rflags", "rip", "rsp", "rax")})
    state.update(vcpu_state(v))
    state["vcpu.arch.rax"] = v["l1.rax"]
    state.update(kvm_mmu.mmu_state(v["cpu.npt"], x86.paging_mode(l1["cr0"], l1["cr4"], l1["efer"]),
                                   l1["cr3"]))
    return state


def gif_location(state) -> str:
    """get_vgif_vmcb() as a path: where GIF is read and written right now."""
    if not state["cpu.vgif"]:
        return "svm.guest_gif"
    nested_vgif = ("VGIF" in state["cpu.features"]
                   and state["nested.ctl.int_ctl"] & defs.V_GIF_ENABLE_MASK)
    if state["vcpu.guest_mode"] and not nested_vgif:
        return "vmcb02.control.int_ctl"
    return "vmcb01.control.int_ctl"


DERIVE_INPUTS = frozenset({"cpu.vgif", "cpu.features", "nested.ctl.int_ctl", "vcpu.guest_mode",
                           "svm.guest_gif", "vmcb01.control.int_ctl", "vmcb02.control.int_ctl"})


def derive(state) -> dict:
    where = gif_location(state)
    gif = int(state[where]) if where == "svm.guest_gif" else int(bool(state[where] & defs.V_GIF_MASK))
    return {"svm.gif_location": where, "vcpu.gif": gif}


def derive_sources(state) -> dict:
    """GIF's value is read from where get_vgif_vmcb() points."""
    return {"vcpu.gif": state["svm.gif_location"]}


def classify(end: str, final) -> tuple:
    outcome, _, failure = end[len("end:"):].partition("/")
    return outcome, (failure or None)


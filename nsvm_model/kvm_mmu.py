"""KVM's MMU-side actions that nested SVM and nested VMX both call.

nested_svm_load_cr3() and nested_vmx_load_cr3() share their shape: check
the CR3, load or mark the PAE PDPTRs, set vcpu->arch.cr3, re-initialize
the MMU from the *current* CR0/CR4/EFER and guest mode, then install the
new root unless nested TDP shadows L1's own tables.  The helpers below are
those shared pieces; each ISA's step decides the arguments.

The MMU is modelled by what a reviewer reasons about: which MMU is active
(root_mmu or guest_mmu), the paging mode its CPU role describes, whether
its role carries the guest-mode bit, and which guest table is its root.
"""

from __future__ import annotations

from . import x86

MMU_READS = ("vcpu.arch.cr0", "vcpu.arch.cr4", "vcpu.arch.efer", "vcpu.guest_mode",
             "vcpu.arch.mmu")
ROLE_WRITES = ("vcpu.arch.gva_walk.cpu_role", "vcpu.arch.root_mmu.root_role.guest_mode")

PDPTR_WRITES = ("vcpu.arch.pdptrs", "vcpu.arch.pdptrs_status")


def mmu_state(tdp: bool, cpu_role: str, cr3: int) -> dict:
    """The MMU fields of a vCPU running L1: root_mmu active, walking GVAs with gva_walk."""
    return {
        "vcpu.arch.mmu": "root_mmu",
        "vcpu.arch.root_mmu.root_role.direct": tdp,
        "vcpu.arch.root_mmu.root_role.guest_mode": 0,
        "vcpu.arch.root_mmu.root.pgd": cr3,
        "vcpu.arch.gva_walk.cpu_role": cpu_role,
        "vcpu.arch.ngpa_walk.cpu_role": "-",
        "vcpu.arch.guest_mmu.root_role.guest_mode": 0,
        "vcpu.arch.guest_mmu.root.pgd": 0,
        "vcpu.arch.pdptrs": (),
        "vcpu.arch.pdptrs_status": "-",
    }


def current_paging_mode(ctx) -> str:
    return x86.paging_mode(ctx.get("vcpu.arch.cr0"), ctx.get("vcpu.arch.cr4"),
                           ctx.get("vcpu.arch.efer"))


def uses_pae_paging(ctx) -> bool:
    """is_pae_paging(), on whatever CR0/CR4/EFER the vCPU holds right now."""
    return x86.is_pae_paging(ctx.get("vcpu.arch.cr0"), ctx.get("vcpu.arch.cr4"),
                             ctx.get("vcpu.arch.efer"))


def load_pdptrs(ctx, cr3: int, maxphyaddr: int) -> bool:
    """load_pdptrs(): read the four PDPTEs; any present one with a reserved bit fails."""
    base = x86.pdpt_base(cr3)
    entries = []
    for i in range(4):
        pdpte = ctx.read_guest(base + 8 * i)
        if pdpte is None:
            ctx.note(f"PDPTE{i} at {base + 8 * i:#x} has no memory behind it")
            return False
        if pdpte & x86.PT_PRESENT_MASK and pdpte & x86.pdptr_rsvd_bits(maxphyaddr):
            ctx.note(f"PDPTE{i} = {pdpte:#x} is present with reserved bits "
                     f"{pdpte & x86.pdptr_rsvd_bits(maxphyaddr):#x}")
            return False
        entries.append(pdpte)
    ctx.set("vcpu.arch.pdptrs", tuple(entries))
    ctx.set("vcpu.arch.pdptrs_status", "loaded")
    ctx.note(f"PDPTEs loaded from {base:#x}: " + ", ".join(f"{e:#x}" for e in entries))
    return True


def mark_pdptrs_for_reload(ctx) -> None:
    """kvm_register_mark_for_reload(VCPU_REG_PDPTR): read them lazily, later."""
    ctx.set("vcpu.arch.pdptrs_status", "marked for reload")
    ctx.note("PDPTRs only marked for reload: they are L2 GPAs, read through L1's tables later")


def kvm_init_mmu(ctx) -> None:
    """kvm_init_mmu(): recompute roles from the current CR0/CR4/EFER and guest mode.

    The CPU role lives in the walker, struct kvm_pagewalk: gva_walk walks the running
    guest's GVAs, ngpa_walk walks L1's NPT/EPT.  With guest_mmu active (nested TDP) only
    gva_walk changes: root_mmu keeps L1's root role.  Otherwise root_mmu's root role is
    recomputed too.
    """
    mode = current_paging_mode(ctx)
    guest_mode = int(ctx.get("vcpu.guest_mode"))
    ctx.set("vcpu.arch.gva_walk.cpu_role", mode)
    if ctx.get("vcpu.arch.mmu") == "guest_mmu":
        ctx.note(f"guest_mmu active: only the walker of guest addresses (gva_walk) changes, to {mode} paging; "
                 "root_mmu untouched")
    else:
        ctx.set("vcpu.arch.root_mmu.root_role.guest_mode", guest_mode)
        ctx.note(f"root_mmu: gva_walk role {mode} paging, root role guest_mode={guest_mode}")


def kvm_mmu_new_pgd(ctx, cr3: int, host_tdp: bool) -> None:
    """kvm_mmu_new_pgd(): root_mmu takes the new CR3 as its pgd."""
    ctx.set("vcpu.arch.root_mmu.root.pgd", cr3)
    if host_tdp:
        ctx.note(f"root_mmu takes pgd {cr3:#x}; with host NPT/EPT it is a direct map of L1's memory, "
                 "so the CPU walks the guest's own tables at that CR3")
    else:
        ctx.note(f"no host NPT/EPT: root_mmu now shadows the guest's tables at {cr3:#x}")


def root_mmu_note(host_tdp: bool, who: str) -> str:
    """What root_mmu is when no nested TDP is in use (init_kvm_tdp_mmu() or init_kvm_softmmu())."""
    if host_tdp:
        return (f"{who} runs on root_mmu, a direct TDP map of L1's memory: the CPU itself walks the "
                f"page tables at {who}'s CR3 (with nested paging off, L1 is the one shadowing them)")
    return f"{who} runs on root_mmu, which shadows {who}'s page tables (no host NPT/EPT)"


def init_shadow_tdp_mmu(ctx, cpu_role: str, root: int, guest_mode: bool, warn: bool = True) -> None:
    """kvm_init_shadow_npt_mmu()/kvm_init_shadow_ept_mmu(): guest_mmu shadows L1's tables.

    The NPT role takes the guest-mode bit from the vCPU and WARNs without it; the EPT
    role (kvm_calc_shadow_ept_root_page_role()) sets it unconditionally: warn=False.
    """
    ctx.set("vcpu.arch.mmu", "guest_mmu")
    ctx.set("vcpu.arch.ngpa_walk.cpu_role", cpu_role)
    ctx.set("vcpu.arch.guest_mmu.root_role.guest_mode", int(guest_mode))
    ctx.set("vcpu.arch.guest_mmu.root.pgd", root)
    if warn and not guest_mode:
        ctx.note("WARN: the nested TDP MMU role is built without the guest-mode bit")


LOAD_CR3_REASON = ("inside the load: legality, then PDPTRs, then vcpu->arch.cr3, then "
                   "kvm_init_mmu() with the current CR0/CR4/EFER, then the new root")


def load_cr3_steps(step, prefix, function, file, cr3_path, nested_tdp, tdp_reads,
                   features, feature_reads, who, host_tdp, manual="", reload_pdptrs=True):
    """Register the five actions of nested_{svm,vmx}_load_cr3() as steps.

    ``step`` is the ISA's step decorator; ``nested_tdp(ctx)`` says whether L1's
    NPT/EPT is shadowed (None: never, as when L1's CR3 is restored).  Labels:
    "illegal_cr3" (CR3 above MAXPHYADDR) and "bad_pdpte" (a PDPTE failed to
    load); each ISA's flow decides where they lead.  ``host_tdp`` is the path of
    the host's NPT/EPT switch (cpu.npt, cpu.ept).  ``reload_pdptrs=False`` is the
    entry from RSM or a nested-state restore (from_vmrun/from_vmentry false): the
    PDPTRs wait for KVM_REQ_GET_NESTED_STATE_PAGES.
    """
    def tdp(ctx):
        return bool(nested_tdp and nested_tdp(ctx))

    def check_legal(ctx):
        cr3 = ctx.get(cr3_path)
        if not x86.is_legal_cr3(cr3, ctx.get("cpu.maxphyaddr"), features(ctx)):
            ctx.note(f"CR3 {cr3:#x} has bits at or above MAXPHYADDR: -EINVAL")
            return "illegal_cr3"
        return None
    check_legal.__doc__ = "kvm_vcpu_is_legal_cr3(): no bit at or above MAXPHYADDR."

    def pdptrs(ctx):
        if not reload_pdptrs:
            ctx.note("not from VMRUN: the PDPTRs are not read now; the nested-state-pages request "
                     "loads them before the next run")
            return None
        if not uses_pae_paging(ctx):
            ctx.note(f"not PAE paging ({current_paging_mode(ctx)}): no PDPTRs")
            return None
        if tdp(ctx):
            mark_pdptrs_for_reload(ctx)
            return None
        if not load_pdptrs(ctx, ctx.get(cr3_path), ctx.get("cpu.maxphyaddr")):
            return "bad_pdpte"
        return None
    pdptrs.__doc__ = "If PAE paging: load the PDPTRs now, or only mark them with nested TDP."

    def set_cr3(ctx):
        ctx.set("vcpu.arch.cr3", ctx.get(cr3_path))
        return None
    set_cr3.__doc__ = "vcpu->arch.cr3 = the new CR3."

    def init_mmu(ctx):
        kvm_init_mmu(ctx)
        return None
    init_mmu.__doc__ = "kvm_init_mmu(): roles recomputed from the current CR0/CR4/EFER and guest mode."

    def new_pgd(ctx):
        if tdp(ctx):
            ctx.note(f"nested TDP: {who}'s CR3 is walked by hardware; guest_mmu's root stays L1's table")
            return None
        kvm_mmu_new_pgd(ctx, ctx.get(cr3_path), ctx.get(host_tdp))
        return None
    new_pgd.__doc__ = "kvm_mmu_new_pgd(CR3) unless the caller says nested TDP (its nested_npt/ept argument)."

    table = [
        ("check_legal", check_legal, (cr3_path, "cpu.maxphyaddr") + feature_reads, (),
         f"{who}'s CR3 must be a legal GPA in every paging mode"),
        ("pdptrs", pdptrs, (cr3_path, "cpu.maxphyaddr", "guest_memory") + tdp_reads + MMU_READS[:3],
         PDPTR_WRITES, f"is_pae_paging() reads the vCPU's CR0/CR4/EFER: they must already be {who}'s"),
        ("set_cr3", set_cr3, (cr3_path,), ("vcpu.arch.cr3",), LOAD_CR3_REASON),
        ("init_mmu", init_mmu, MMU_READS, ROLE_WRITES,
         "the MMU role is derived from the current CR0/CR4/EFER and guest mode"),
        ("new_pgd", new_pgd, (cr3_path, host_tdp) + tdp_reads, ("vcpu.arch.root_mmu.root.pgd",),
         "the new root must be installed with the new role, so after kvm_init_mmu()"),
    ]
    ids = []
    for name, action, reads, writes, reason in table:
        sid = f"{prefix}.load_cr3.{name}"
        step(sid, function, file, "P12", reads=reads, writes=writes, reason=reason,
             manual=manual if name == "pdptrs" else "")(action)
        ids.append(sid)
    return tuple(ids)

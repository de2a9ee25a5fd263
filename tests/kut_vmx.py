"""Every nested VM-entry consistency case of kvm-unit-tests x86/vmx_tests.c, loop by loop.

``build_cases()`` walks the test functions of kvm-unit-tests ``x86/vmx_tests.c`` (commit
KUT_COMMIT) in their own order and writes one concrete record per VMLAUNCH/VMRESUME whose
outcome the C code asserts.  Each C loop is expanded the way the C code runs it (start, end,
step, the bits it skips), against the capability MSRs KVM gives L1 (the constants below;
tests/data/kut-vmx-README.md, "Environment"), and each record carries the whole vmcs12 state
the C code has built by then: the tests change the VMCS cumulatively (and do not always
restore what they change), so a record holds every change still in force relative to the
model's rendition of kvm-unit-tests' ``init_vmcs()`` (``nm.Scenario.vmx()``), not only the
last write.

The records are the data: ``python tests/kut_vmx.py`` rewrites
``tests/data/kut-vmx-cases.jsonl.gz``; ``tests/test_kut_vmx.py`` runs every record through the
model and checks that the file matches this generator.

Expected outcomes are those the C code asserts, in the model's vocabulary (README,
"Outcomes"); where kvm-unit-tests and KVM at KVM_COMMIT disagree (or kvm-unit-tests accepts
two outcomes), the record carries KVM's and says why in ``notes``.  ``kernel_check`` names
the check of arch/x86/kvm/vmx/nested.c that decides the case or, for what KVM leaves to the
CPU's own checks on vmcs02, the Intel SDM section; ``model_check`` names the model's check
(nsvm_model.vmx.checks ids, step ids, or ``hw:<what>`` for the CPU checks of
nsvm_model.vmx.steps.hardware_entry_failure()) that should decide it.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import nsvm_model as nm
from nsvm_model import x86
from nsvm_model.vmx import defs as d
from nsvm_model.vmx.scenarios import (EPT_ROOT, EXIT_MSR_LOAD_GPA, MSR_BITMAP_GPA, MSR_LOAD_GPA,
                                      PAE_PD, PAE_PDPT, PSE_PD, VMCS12_FIELDS)

KUT_REPO = "kvm-unit-tests/kvm-unit-tests"
KUT_PATH = "x86/vmx_tests.c"
KUT_COMMIT = "1da1819e49fc4938985edca67df669099b4c87a7"
KVM_COMMIT = "1a27afa0511e404fd87c1a5e643945940ef72f90"
NESTED_C = "arch/x86/kvm/vmx/nested.c@1a27afa0511e"
VMX_C = "arch/x86/kvm/vmx/vmx.c@1a27afa0511e"
SDM = "Intel SDM vol. 3C"

DATA = Path(__file__).resolve().parent / "data" / "kut-vmx-cases.jsonl.gz"     # 5 MB of JSON, 90 kB gzipped

# --- the environment the loops are expanded against -------------------------------------
# kvm-unit-tests reads these from the CPU it runs on (capability MSRs, CPUID, fw_cfg); the
# values are KVM's (nested_vmx_setup_ctls_msrs() and nested_vmx_cr_fixed1_bits_update() at
# KVM_COMMIT) for the host the model assumes: every nested feature of nsvm_model.vmx.caps
# (EPT with A/D bits, PML, MBEC, 4- and 5-level EPT, VPID, unrestricted guest, APICv,
# flexpriority, MPX, CET), no WAITPKG and no SGX (so no USR_WAIT_PAUSE, no ENCLS exiting),
# no VMX_BASIC_NO_HW_ERROR_CODE_CC.  L1's CPUID is KUT_L1_CPUID (and MPX), and KVM itself has
# no LA57: narrower than the model's default host, so every case sets KUT_HOST.
KUT_L1_CPUID = frozenset({"VMX", "LM", "NX", "XSAVE", "SMEP", "SMAP", "FSGSBASE", "UMIP", "PCID", "RDTSCP"})
KUT_HOST = {"cpu.features": KUT_L1_CPUID, "cpu.host_la57": False}
M = 48                                  # cpuid_maxphyaddr(); the scenario's cpu.maxphyaddr
RAM = 128 << 20                         # fwcfg RAM size: x86/run passes no -m (QEMU: 128 MiB)
PAGE = 0x1000
NONCANONICAL = 0xAAAAAAAAAAAAAAAA       # lib/x86/processor.h
MASK64 = (1 << 64) - 1

PIN_SET = d.PIN_BASED_ALWAYSON_WITHOUT_TRUE_MSR
PIN_CLR = (PIN_SET | d.PIN_BASED_EXT_INTR_MASK | d.PIN_BASED_NMI_EXITING | d.PIN_BASED_VIRTUAL_NMIS
           | d.PIN_BASED_POSTED_INTR | d.PIN_BASED_VMX_PREEMPTION_TIMER)
CPU0_SET = d.CPU_BASED_ALWAYSON_WITHOUT_TRUE_MSR & ~(d.CPU_BASED_CR3_LOAD_EXITING
                                                     | d.CPU_BASED_CR3_STORE_EXITING)
CPU0_CLR = (d.CPU_BASED_ALWAYSON_WITHOUT_TRUE_MSR | d.CPU_BASED_INTR_WINDOW_EXITING
            | d.CPU_BASED_NMI_WINDOW_EXITING | d.CPU_BASED_USE_TSC_OFFSETTING | d.CPU_BASED_HLT_EXITING
            | d.CPU_BASED_INVLPG_EXITING | d.CPU_BASED_MWAIT_EXITING | d.CPU_BASED_CR3_LOAD_EXITING
            | d.CPU_BASED_CR3_STORE_EXITING | d.CPU_BASED_CR8_LOAD_EXITING | d.CPU_BASED_CR8_STORE_EXITING
            | d.CPU_BASED_MOV_DR_EXITING | d.CPU_BASED_UNCOND_IO_EXITING | d.CPU_BASED_USE_IO_BITMAPS
            | d.CPU_BASED_MONITOR_TRAP_FLAG | d.CPU_BASED_MONITOR_EXITING | d.CPU_BASED_RDPMC_EXITING
            | d.CPU_BASED_RDTSC_EXITING | d.CPU_BASED_PAUSE_EXITING | d.CPU_BASED_TPR_SHADOW
            | d.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS | d.CPU_BASED_USE_MSR_BITMAPS)
CPU1_SET = 0
CPU1_CLR = (d.SECONDARY_EXEC_DESC | d.SECONDARY_EXEC_ENABLE_RDTSCP | d.SECONDARY_EXEC_VIRTUALIZE_X2APIC_MODE
            | d.SECONDARY_EXEC_WBINVD_EXITING | d.SECONDARY_EXEC_APIC_REGISTER_VIRT
            | d.SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY | d.SECONDARY_EXEC_RDRAND_EXITING
            | d.SECONDARY_EXEC_ENABLE_INVPCID | d.SECONDARY_EXEC_ENABLE_VMFUNC | d.SECONDARY_EXEC_RDSEED_EXITING
            | d.SECONDARY_EXEC_XSAVES | d.SECONDARY_EXEC_TSC_SCALING | d.SECONDARY_EXEC_SHADOW_VMCS
            | d.SECONDARY_EXEC_ENABLE_EPT | d.SECONDARY_EXEC_ENABLE_PML | d.SECONDARY_EXEC_MODE_BASED_EPT_EXEC
            | d.SECONDARY_EXEC_ENABLE_VPID | d.SECONDARY_EXEC_UNRESTRICTED_GUEST
            | d.SECONDARY_EXEC_VIRTUALIZE_APIC_ACCESSES)
ENT_SET = d.VM_ENTRY_ALWAYSON_WITHOUT_TRUE_MSR & ~d.VM_ENTRY_LOAD_DEBUG_CONTROLS
CR0_FIXED0 = x86.X86_CR0_PE | x86.X86_CR0_NE | x86.X86_CR0_PG
CR0_FIXED1 = 0xFFFFFFFF                 # nested_vmx_cr_fixed1_bits_update()
CR4_FIXED0 = x86.X86_CR4_VMXE
CR4_FIXED1 = (x86.X86_CR4_PCE | x86.X86_CR4_VME | x86.X86_CR4_PVI | x86.X86_CR4_TSD | x86.X86_CR4_DE
              | x86.X86_CR4_PSE | x86.X86_CR4_PAE | x86.X86_CR4_MCE | x86.X86_CR4_PGE | x86.X86_CR4_OSFXSR
              | x86.X86_CR4_OSXMMEXCPT | x86.X86_CR4_VMXE | x86.X86_CR4_FSGSBASE | x86.X86_CR4_PCIDE
              | x86.X86_CR4_OSXSAVE | x86.X86_CR4_SMEP | x86.X86_CR4_SMAP | x86.X86_CR4_UMIP)
PMU_GP, PMU_FIXED = 8, 3                # CPUID.0AH: EAX[15:8] = 8, EDX[4:0] = 3, ECX = 0
SUPPORTED_CR3_TARGETS = 0               # IA32_VMX_MISC[24:16]
MAX_MSR_LIST = 512                      # (IA32_VMX_MISC[27:25] + 1) * 512

# pages kvm-unit-tests allocates (alloc_page()), placed in the model's guest memory below 128 MiB
APIC_ACCESS_PAGE = 0x24000
VIRTUAL_APIC_PAGE = 0x25000
EXIT_MSR_STORE_PAGE = 0x26000
ENTRY_MSR_PAGE = MSR_LOAD_GPA
EXIT_MSR_LOAD_PAGE = EXIT_MSR_LOAD_GPA
MSR_BITMAP_PAGE = MSR_BITMAP_GPA
EPT_PML4 = EPT_ROOT                      # setup_ept()'s PML4
ATOMIC_LISTS = (0x400000, 0x420000, 0x440000)   # alloc_pages(5): entry load, exit load, exit store
MSR_IA32_TSC = 0x10
MSR_MAGIC = 0x31415926

# --- vmcs12 fields by kvm-unit-tests' names -----------------------------------------------


def F(name):
    return f"vmcs12.{name}"


PIN, CPU0, CPU1 = F("pin_based_vm_exec_control"), F("cpu_based_vm_exec_control"), F("secondary_vm_exec_control")
EXI, ENT = F("vm_exit_controls"), F("vm_entry_controls")
CR3_TARGET_COUNT, VPID, EPTP = F("cr3_target_count"), F("virtual_processor_id"), F("ept_pointer")
IO_BITMAP_A, IO_BITMAP_B, MSR_BITMAP = F("io_bitmap_a"), F("io_bitmap_b"), F("msr_bitmap")
APIC_VIRT_ADDR, APIC_ACCS_ADDR, TPR_THRESHOLD = (F("virtual_apic_page_addr"), F("apic_access_addr"),
                                                 F("tpr_threshold"))
PINV, POSTED_INTR_DESC_ADDR, PMLADDR = F("posted_intr_nv"), F("posted_intr_desc_addr"), F("pml_address")
ENT_INTR_INFO, ENT_INTR_ERROR, ENT_INST_LEN = (F("vm_entry_intr_info_field"), F("vm_entry_exception_error_code"),
                                               F("vm_entry_instruction_len"))
ENT_MSR_LD_CNT, ENTER_MSR_LD_ADDR = F("vm_entry_msr_load_count"), F("vm_entry_msr_load_addr")
EXI_MSR_ST_CNT, EXIT_MSR_ST_ADDR = F("vm_exit_msr_store_count"), F("vm_exit_msr_store_addr")
EXI_MSR_LD_CNT, EXIT_MSR_LD_ADDR = F("vm_exit_msr_load_count"), F("vm_exit_msr_load_addr")
HOST_CR0, HOST_CR3, HOST_CR4 = F("host_cr0"), F("host_cr3"), F("host_cr4")
HOST_EFER, HOST_PAT, HOST_RIP = F("host_ia32_efer"), F("host_ia32_pat"), F("host_rip")
HOST_SYSENTER_ESP, HOST_SYSENTER_EIP = F("host_ia32_sysenter_esp"), F("host_ia32_sysenter_eip")
HOST_PERF_GLOBAL_CTRL, HOST_S_CET = F("host_ia32_perf_global_ctrl"), F("host_s_cet")
GUEST_CR0, GUEST_CR3, GUEST_CR4 = F("guest_cr0"), F("guest_cr3"), F("guest_cr4")
GUEST_EFER, GUEST_PAT, GUEST_DR7 = F("guest_ia32_efer"), F("guest_ia32_pat"), F("guest_dr7")
GUEST_RFLAGS, GUEST_SYSENTER_ESP, GUEST_SYSENTER_EIP = (F("guest_rflags"), F("guest_sysenter_esp"),
                                                        F("guest_sysenter_eip"))
GUEST_PERF_GLOBAL_CTRL, GUEST_BNDCFGS, GUEST_S_CET = (F("guest_ia32_perf_global_ctrl"), F("guest_bndcfgs"),
                                                      F("guest_s_cet"))
GUEST_BASE_GDTR, GUEST_BASE_IDTR = F("guest_gdtr_base"), F("guest_idtr_base")
GUEST_LIMIT_GDTR, GUEST_LIMIT_IDTR = F("guest_gdtr_limit"), F("guest_idtr_limit")
GUEST_AR_CS, GUEST_SEL_CS = F("guest_cs_ar_bytes"), F("guest_cs_selector")


def HOST_SEL(s):
    return F(f"host_{s}_selector")


def HOST_BASE(s):
    return F(f"host_{s}_base")


def GUEST_SEL(s):
    return F(f"guest_{s}_selector")


def GUEST_AR(s):
    return F(f"guest_{s}_ar_bytes")


def GUEST_BASE(s):
    return F(f"guest_{s}_base")


def GUEST_PDPTE(i):
    return F(f"guest_pdptr{i}")


WIDTH = {F(name): bits for name, bits in VMCS12_FIELDS}
# fields the base scenario of this revision of the model may not have yet
WIDTH.update({HOST_PERF_GLOBAL_CTRL: 64, GUEST_PERF_GLOBAL_CTRL: 64, GUEST_BNDCFGS: 64,
              HOST_S_CET: 64, GUEST_S_CET: 64})

# kvm-unit-tests' bit names
CPU_SECONDARY, CPU_TPR_SHADOW = d.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS, d.CPU_BASED_TPR_SHADOW
CPU_IO_BITMAP, CPU_MSR_BITMAP = d.CPU_BASED_USE_IO_BITMAPS, d.CPU_BASED_USE_MSR_BITMAPS
CPU_CR8_LOAD, CPU_CR8_STORE = d.CPU_BASED_CR8_LOAD_EXITING, d.CPU_BASED_CR8_STORE_EXITING
CPU_NMI_WINDOW = d.CPU_BASED_NMI_WINDOW_EXITING
CPU_VIRT_APIC_ACCESSES, CPU_EPT = d.SECONDARY_EXEC_VIRTUALIZE_APIC_ACCESSES, d.SECONDARY_EXEC_ENABLE_EPT
CPU_VIRT_X2APIC, CPU_VPID = d.SECONDARY_EXEC_VIRTUALIZE_X2APIC_MODE, d.SECONDARY_EXEC_ENABLE_VPID
CPU_URG, CPU_APIC_REG_VIRT = d.SECONDARY_EXEC_UNRESTRICTED_GUEST, d.SECONDARY_EXEC_APIC_REGISTER_VIRT
CPU_VINTD, CPU_PML = d.SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY, d.SECONDARY_EXEC_ENABLE_PML
CPU_MODE_BASED_EPT_EXEC = d.SECONDARY_EXEC_MODE_BASED_EPT_EXEC
PIN_EXTINT, PIN_NMI, PIN_VIRT_NMI = d.PIN_BASED_EXT_INTR_MASK, d.PIN_BASED_NMI_EXITING, d.PIN_BASED_VIRTUAL_NMIS
PIN_PREEMPT, PIN_POST_INTR = d.PIN_BASED_VMX_PREEMPTION_TIMER, d.PIN_BASED_POSTED_INTR
EXI_LOAD_EFER, EXI_HOST_64, EXI_LOAD_PAT = (d.VM_EXIT_LOAD_IA32_EFER, d.VM_EXIT_HOST_ADDR_SPACE_SIZE,
                                            d.VM_EXIT_LOAD_IA32_PAT)
EXI_INTA, EXI_SAVE_PREEMPT = d.VM_EXIT_ACK_INTR_ON_EXIT, d.VM_EXIT_SAVE_VMX_PREEMPTION_TIMER
EXI_LOAD_PERF, EXI_LOAD_CET = d.VM_EXIT_LOAD_IA32_PERF_GLOBAL_CTRL, 1 << 28
ENT_LOAD_EFER, ENT_GUEST_64, ENT_LOAD_PAT = (d.VM_ENTRY_LOAD_IA32_EFER, d.VM_ENTRY_IA32E_MODE,
                                             d.VM_ENTRY_LOAD_IA32_PAT)
ENT_LOAD_DBGCTLS, ENT_LOAD_PERF = d.VM_ENTRY_LOAD_DEBUG_CONTROLS, d.VM_ENTRY_LOAD_IA32_PERF_GLOBAL_CTRL
ENT_LOAD_BNDCFGS, ENT_LOAD_CET = d.VM_ENTRY_LOAD_BNDCFGS, 1 << 20
INTR_INFO_VALID_MASK, INTR_INFO_DELIVER_CODE_MASK = d.INTR_INFO_VALID_MASK, d.INTR_INFO_DELIVER_CODE_MASK
EPT_MEM_TYPE_WB, EPTP_PG_WALK_LEN_SHIFT, EPTP_AD_FLAG = 6, 3, 1 << 6
ERROR_CODE_VECTORS = (x86.DF_VECTOR, x86.TS_VECTOR, x86.NP_VECTOR, x86.SS_VECTOR, x86.GP_VECTOR,
                      x86.PF_VECTOR, x86.AC_VECTOR)
GUEST_SEG_UNUSABLE_MASK, GUEST_SEG_SEL_TI_MASK = 1 << 16, 1 << 2

# --- kernel checks ------------------------------------------------------------------------
RUN = "nested_vmx_run() -> "
EXEC = RUN + "nested_vmx_check_controls() -> nested_check_vm_execution_controls()"
EXITC = RUN + "nested_vmx_check_controls() -> nested_check_vm_exit_controls()"
ENTRYC = RUN + "nested_vmx_check_controls() -> nested_check_vm_entry_controls()"
HOSTC = RUN + "nested_vmx_check_host_state()"
GUESTC = "nested_vmx_enter_non_root_mode() -> nested_vmx_check_guest_state()"
PREP = "nested_vmx_enter_non_root_mode() -> prepare_vmcs02()"
REFLECT = (f"; KVM leaves it to the CPU, and {NESTED_C} nested_vmx_reflect_vmexit() reflects the failed "
           "VM entry to L1 (EXIT_REASON_INVALID_STATE)")
PASS = ("none of KVM's checks fails (nested_vmx_check_controls(), nested_vmx_check_host_state(), "
        "nested_vmx_check_guest_state(), prepare_vmcs02(), nested_vmx_load_msr())")


def kvm(chain, cc):
    return f"{NESTED_C} {chain}: {cc}"


def cpu(section, rule):
    return f"{SDM} {section}: {rule}{REFLECT}"


K_RFLAGS = f"{SDM} 27.3.1.4 (RFLAGS bit 1 must be 1): KVM's checks pass; the CPU refuses vmcs02" + REFLECT
K_L2_RUNS = f"{NESTED_C} {PASS}: L2 runs (and its VMCALL exits to L1)"
K_MSR_ZERO = kvm("nested_vmx_enter_non_root_mode() -> nested_vmx_load_msr()",
                 "entry 1 names MSR 0 (the list's memory holds zeroes) and kvm_emulate_msr_write() fails, or "
                 "kvm_vcpu_read_guest() of an address with no memory fails: goto fail, return i + 1")

P_ENV = "environment of kut-vmx-README.md (MAXPHYADDR 48, 128 MiB of RAM, L1 CPUID = KUT_L1_CPUID, a CPU with MPX)"
P_CTRL = "GUEST_RFLAGS = 0: an entry KVM accepts fails on vmcs02 (exit 33), which vmlaunch() counts as success"
P_HOST = P_CTRL
P_GUEST = "L1 enters L2 with VMLAUNCH, and with VMRESUME once L2 has run; L2 exits with VMCALL"
P_MEM0 = "memory the record does not list reads as zeroes"


def h(value):
    return hex(value)


class Sim:
    """The vmcs12 kvm-unit-tests is building, and the cases it asserts."""

    def __init__(self, out, test, lines, area, pre, valid="rflags", extra=None):
        self.out, self.test, self.lines, self.area = out, test, lines, area
        self.pre = list(pre)
        base = nm.Scenario.vmx().with_fields(KUT_HOST)
        self.base = {k: v for k, v in base.values.items() if k.startswith("vmcs12.")}
        self.base_memory = base.memory
        self.v = dict(self.base)
        self.mem = {}
        self.extra = dict(extra or {})
        self.launched = False
        self.valid_kind = valid        # what a "valid" VM entry ends in: "rflags" or "l2"
        self.sub = None                # (function name, lines) of the C function under way

    # VMWRITE/VMREAD
    def w(self, field, value):
        self.v[field] = value & ((1 << WIDTH[field]) - 1)

    def r(self, field):
        return self.v.get(field, 0)

    def at(self, name, lines, area=None):
        self.sub = (name, lines)
        if area:
            self.area = area
        return self

    # the record
    def emit(self, tag, c, expected, qual=None, kernel="", model=None, decided="kvm", notes="", gap=None):
        name, lines = self.sub
        changes = {}
        for k, v in self.v.items():
            if v != self.base.get(k, 0):
                changes[k] = h(v)
        if self.launched:
            changes["l1.instruction"] = "VMRESUME"
            changes["vmcs12.launch_state"] = 1
        changes.update(self.extra)
        rec = {
            "id": f"kut-vmx-{tag}",
            "isa": "vmx",
            "area": self.area,
            "source": {"repo": KUT_REPO, "path": KUT_PATH, "commit": KUT_COMMIT,
                       "test": f"{self.test} > {name}", "lines": lines},
            "setup": {"base": "kut_init_vmcs", "l2_mode": "long", "c": c, "changes": changes,
                      "memory": {h(a): h(v) for a, v in sorted(self.mem.items())
                                 if v != self.base_memory.read(a)},
                      "preconditions": list(self.pre)},
            "expected": expected,
            "exit_qualification": qual,
            "decided_by": decided,
            "kernel_check": kernel,
            "model_check": model,
            "notes": notes,
        }
        if gap:
            rec["model_gap"] = gap
        self.out.append(rec)
        if expected == "l2_runs":
            self.launched = True

    def valid(self, tag, c, notes="", gap=None):
        """A VM entry every check accepts: exit 33 for GUEST_RFLAGS = 0, else L2 runs."""
        if self.valid_kind == "rflags":
            self.emit(tag, c, "vmexit:33", 0, K_RFLAGS, "hw:rflags", "cpu", notes, gap)
        else:
            self.emit(tag, c, "l2_runs", None, K_L2_RUNS, None, "kvm", notes, gap)

    def vmfail(self, tag, c, error, kernel, model, notes="", gap=None):
        self.emit(tag, c, f"vmfail_valid:{error}", None, kernel, model, "kvm", notes, gap)

    def exit33(self, tag, c, kernel, model, decided="kvm", qual=0, notes="", gap=None):
        self.emit(tag, c, "vmexit:33", qual, kernel, model, decided, notes, gap)


# --- model gaps (what the model cannot express or gets wrong), by area ----------------------
# None open: the vTPR check (SDM 27.2.1.1, late VMfail 7), __vmx_guest_state_valid()'s
# protected-mode segment checks, and the CPU's segment-base and GDTR/IDTR checks (SDM 27.3.1.2,
# 27.3.1.3) were closed in the model; a new gap passes gap="<area>: <why>" to emit().


# --- vmx_controls_test -----------------------------------------------------------------------

def kut_vmlaunch_controls(s, tag, c, valid, kernel, model, notes="", gap=None):
    if valid:
        s.valid(tag, c, notes, gap)
    else:
        s.vmfail(tag, c, d.VMXERR_ENTRY_INVALID_CONTROL_FIELD, kernel, model, notes, gap)


def test_rsvd_ctl_bit(s, slug, name, set_, clr, field, kernel, model):
    for bit in range(32):
        for val in (0, 1):
            mask = 1 << bit
            if val and (clr & mask) and not (set_ & mask):
                continue            # "we only test turning on bits that have a required setting"
            saved = s.r(field)
            if val:
                s.w(field, set_ | mask)
                ok = bool(clr & mask)
                c = f"{name} = msr.set | (1u << {bit})"
            else:
                s.w(field, set_ & ~mask)
                ok = not (set_ & mask)
                c = f"{name} = msr.set & ~(1u << {bit})"
            kut_vmlaunch_controls(s, f"{slug}-{'set' if val else 'clear'}-bit{bit}", c, ok, kernel, model)
            s.w(field, saved)


def vmx_controls_test(out):
    s = Sim(out, "vmx_controls_test", "6080-6092", "pin-based controls", [P_ENV, P_CTRL])
    s.w(GUEST_RFLAGS, 0)

    # test_vm_execution_ctls()
    s.at("test_pin_based_ctls > test_rsvd_ctl_bit_value", "3781-3845", "pin-based controls")
    test_rsvd_ctl_bit(s, "pin", "PIN_CONTROLS", PIN_SET, PIN_CLR, PIN,
                      kvm(EXEC, "CC(!vmx_control_verify(vmcs12->pin_based_vm_exec_control, "
                                "pinbased_ctls_low, pinbased_ctls_high))"), "X1")
    s.at("test_primary_processor_based_ctls > test_rsvd_ctl_bit_value", "3781-3862",
         "primary processor-based controls")
    test_rsvd_ctl_bit(s, "cpu0", "CPU_EXEC_CTRL0", CPU0_SET, CPU0_CLR, CPU0,
                      kvm(EXEC, "CC(!vmx_control_verify(vmcs12->cpu_based_vm_exec_control, "
                                "procbased_ctls_low, procbased_ctls_high))"), "X2")
    s.at("test_secondary_processor_based_ctls > test_rsvd_ctl_bit_value", "3781-3904",
         "secondary processor-based controls")
    primary, secondary = s.r(CPU0), s.r(CPU1)
    s.w(CPU0, primary | CPU_SECONDARY)
    test_rsvd_ctl_bit(s, "cpu1", "CPU_EXEC_CTRL1", CPU1_SET, CPU1_CLR, CPU1,
                      kvm(EXEC, "nested_cpu_has(vmcs12, CPU_BASED_ACTIVATE_SECONDARY_CONTROLS) && "
                                "CC(!vmx_control_verify(vmcs12->secondary_vm_exec_control, "
                                "secondary_ctls_low, secondary_ctls_high))"), "X3")
    s.at("test_secondary_processor_based_ctls", "3876-3904")
    s.w(CPU0, primary & ~CPU_SECONDARY)
    s.w(CPU1, 0xFFFFFFFF)
    s.valid("cpu1-ignored-without-activate-secondary",
            "CPU_EXEC_CTRL0 = primary & ~CPU_SECONDARY; CPU_EXEC_CTRL1 = ~0",
            "nested_cpu_has2() reads the secondary controls only with ACTIVATE_SECONDARY_CONTROLS")
    s.w(CPU1, secondary)
    s.w(CPU0, primary)

    test_cr3_targets(s)
    s.at("test_io_bitmaps > test_vmcs_addr_reference", "3948-4065", "I/O and MSR bitmaps")
    kio = kvm(EXEC + " -> nested_vmx_check_io_bitmap_controls()",
              "CC(!page_address_valid(vcpu, vmcs12->io_bitmap_a)) || CC(!page_address_valid(vcpu, "
              "vmcs12->io_bitmap_b))")
    test_vmcs_addr_reference(s, CPU_IO_BITMAP, IO_BITMAP_A, "IO_BITMAP_A", "io-bitmap-a", PAGE, False, True,
                             kio, "X5")
    test_vmcs_addr_reference(s, CPU_IO_BITMAP, IO_BITMAP_B, "IO_BITMAP_B", "io-bitmap-b", PAGE, False, True,
                             kio, "X5")
    s.at("test_msr_bitmap > test_vmcs_addr_reference", "3948-4078")
    test_vmcs_addr_reference(s, CPU_MSR_BITMAP, MSR_BITMAP, "MSR_BITMAP", "msr-bitmap", PAGE, False, True,
                             kvm(EXEC + " -> nested_vmx_check_msr_bitmap_controls()",
                                 "CC(!page_address_valid(vcpu, vmcs12->msr_bitmap))"), "X6")
    test_apic_ctls(s)
    test_tpr_threshold(s)
    test_nmi_ctrls(s)
    test_pml(s)
    test_vpid(s)
    test_ept_eptp(s)
    test_mode_based_execute_control(s)
    test_vmx_preemption_timer(s)
    # test_vm_exit_ctls()
    test_exit_msr_store(s)
    # test_vm_entry_ctls()
    test_invalid_event_injection(s)
    test_entry_msr_load(s)


def test_cr3_targets(s):
    s.at("test_cr3_targets > try_cr3_target_count", "3906-3943", "CR3-target count")
    saved = s.r(CR3_TARGET_COUNT)
    k = kvm(EXEC, "CC(vmcs12->cr3_target_count > nested_cpu_vmx_misc_cr3_count(vcpu))")
    for i in [0xFFFFFFFF, 0x80000000, 0x7FFFFFFF] + list(range(SUPPORTED_CR3_TARGETS + 2)):
        s.w(CR3_TARGET_COUNT, i)
        kut_vmlaunch_controls(s, f"cr3-target-count-{i:#x}", f"CR3_TARGET_COUNT = {i:#x}",
                              i <= SUPPORTED_CR3_TARGETS, k, "X4")
    s.w(CR3_TARGET_COUNT, saved)


def vmcs_addr_cases(s, field, name, slug, align, ignored, skip_beyond, bit_start, bit_end, kernel, model,
                    valid=None, notes=""):
    """test_vmcs_addr_values(): 1 << i for each bit, then PAGE_SIZE - 1, PAGE_SIZE,
    (1 << MAXPHYADDR) - PAGE_SIZE and -1."""
    orig = s.r(field)
    addrs = [(f"bit{i}", 1 << i) for i in range(bit_start, bit_end + 1)] + [
        ("page-size-minus-1", PAGE - 1), ("page-size", PAGE), ("maxphyaddr-top-page", (1 << M) - PAGE),
        ("all-ones", MASK64)]
    for what, addr in addrs:
        s.w(field, addr)
        c = f"{name} = {addr:#x}"
        tag = f"{slug}-{what}"
        if skip_beyond and addr > RAM - align and addr < (1 << M):
            continue        # "Skipping physical address beyond mapped RAM"
        if ignored or (addr % align == 0 and addr < (1 << M)):
            (valid or s.valid)(tag, c, notes)
        else:
            s.vmfail(tag, c, d.VMXERR_ENTRY_INVALID_CONTROL_FIELD, kernel, model)
    s.w(field, orig)


def test_vmcs_addr_reference(s, control_bit, field, name, slug, align, skip_beyond, control_primary,
                             kernel, model):
    primary, secondary = s.r(CPU0), s.r(CPU1)
    page_addr = s.r(field)
    if control_primary:
        s.w(CPU0, primary | control_bit)
    else:
        s.w(CPU0, primary | CPU_SECONDARY)
        s.w(CPU1, secondary | control_bit)
    vmcs_addr_cases(s, field, name, f"{slug}-enabled", align, False, skip_beyond, 0, 63, kernel, model)
    if control_primary:
        s.w(CPU0, primary & ~control_bit)
    else:
        s.w(CPU0, primary & ~CPU_SECONDARY)
        s.w(CPU1, secondary & ~control_bit)
    vmcs_addr_cases(s, field, name, f"{slug}-disabled", align, True, False, 0, 63, kernel, model)
    s.w(field, page_addr)
    s.w(CPU0, primary)
    s.w(CPU1, secondary)


def test_apic_ctls(s):
    # test_apic_virt_addr()
    s.at("test_apic_virt_addr > test_vmcs_addr_reference", "3948-4049, 4088-4101", "APIC virtualization")
    cpu_ctrls0 = s.r(CPU0)
    s.w(CPU0, cpu_ctrls0 | CPU_CR8_LOAD | CPU_CR8_STORE)
    test_vmcs_addr_reference(s, CPU_TPR_SHADOW, APIC_VIRT_ADDR, "APIC_VIRT_ADDR", "virtual-apic-addr", PAGE,
                             True, True,
                             kvm(EXEC + " -> nested_vmx_check_tpr_shadow_controls()",
                                 "CC(!page_address_valid(vcpu, vmcs12->virtual_apic_page_addr))"), "X7")
    s.w(CPU0, cpu_ctrls0)

    # test_apic_access_addr()
    s.at("test_apic_access_addr > test_vmcs_addr_reference", "3948-4049, 4111-4121")
    s.w(APIC_ACCS_ADDR, APIC_ACCESS_PAGE)
    test_vmcs_addr_reference(s, CPU_VIRT_APIC_ACCESSES, APIC_ACCS_ADDR, "APIC_ACCS_ADDR", "apic-access-addr",
                             PAGE, True, False,
                             kvm(EXEC + " -> nested_vmx_check_apic_access_controls()",
                                 "CC(!page_address_valid(vcpu, vmcs12->apic_access_addr))"), "X8")

    test_apic_virtual_ctls(s)
    test_virtual_intr_ctls(s)
    test_posted_intr(s)


K_APICV_TPR = kvm(EXEC + " -> nested_vmx_check_apicv_controls()",
                  "CC(!nested_cpu_has(vmcs12, CPU_BASED_TPR_SHADOW)) (every APICv feature needs the TPR shadow)")


def test_apic_virtual_ctls(s):
    s.at("test_apic_virtual_ctls", "4123-4242")
    saved_primary, saved_secondary = s.r(CPU0), s.r(CPU1)
    primary, secondary = saved_primary, saved_secondary
    primary = (primary | CPU_SECONDARY) & ~CPU_TPR_SHADOW
    s.w(CPU0, primary)
    for i in range(2):
        for j in range(1, 8):
            secondary &= ~(CPU_VIRT_X2APIC | CPU_APIC_REG_VIRT | CPU_VINTD)
            if primary & CPU_TPR_SHADOW:
                ok = True
            else:
                flag = False
                for n, bit in enumerate((CPU_VIRT_X2APIC, CPU_APIC_REG_VIRT, CPU_VINTD)):
                    if j & (1 << n) and CPU1_CLR & bit:
                        secondary |= bit
                        flag = True
                ok = not flag
            s.w(CPU1, secondary)
            tpr = "on" if primary & CPU_TPR_SHADOW else "off"
            tag = f"apicv-ctls-tpr-{tpr}-pattern{j}"
            c = (f"CPU_EXEC_CTRL0 = CPU_SECONDARY{' | CPU_TPR_SHADOW' if tpr == 'on' else ''}; "
                 f"CPU_EXEC_CTRL1 = {secondary:#x}")
            notes = ("with the TPR shadow on the loop leaves the pattern bits clear (set_bit_pattern() "
                     "runs only when it is off)" if tpr == "on" else "")
            kut_vmlaunch_controls(s, tag, c, ok, K_APICV_TPR, "X9d", notes)
        if i == 1:
            break
        primary |= CPU_TPR_SHADOW
        s.w(CPU0, primary)

    primary, secondary = saved_primary, saved_secondary
    s.w(CPU0, primary | CPU_SECONDARY)
    secondary &= ~CPU_VIRT_APIC_ACCESSES
    s.w(CPU1, secondary & ~CPU_VIRT_X2APIC)
    s.valid("apicv-x2apic-off-vaa-off", "CPU_EXEC_CTRL1 = secondary & ~CPU_VIRT_X2APIC")
    s.w(CPU1, secondary | CPU_VIRT_APIC_ACCESSES)
    s.valid("apicv-x2apic-off-vaa-on", "CPU_EXEC_CTRL1 = secondary | CPU_VIRT_APIC_ACCESSES",
            "APIC_ACCS_ADDR still holds test_apic_access_addr()'s page")
    s.w(CPU1, secondary | CPU_VIRT_X2APIC)
    s.vmfail("apicv-x2apic-on-vaa-on", "CPU_EXEC_CTRL1 = secondary | CPU_VIRT_X2APIC",
             d.VMXERR_ENTRY_INVALID_CONTROL_FIELD, K_APICV_TPR, "X9d",
             "kvm-unit-tests names this 'virtualize x2APIC mode enabled; virtualize APIC access enabled', but "
             "`secondary` had VIRTUALIZE_APIC_ACCESSES cleared, so only x2APIC mode is on; KVM rejects it "
             "because the TPR shadow is off, not for the x2APIC/APIC-access exclusion")
    s.w(CPU1, secondary & ~CPU_VIRT_APIC_ACCESSES)
    s.valid("apicv-x2apic-on-vaa-off", "CPU_EXEC_CTRL1 = secondary & ~CPU_VIRT_APIC_ACCESSES",
            "named 'virtualize x2APIC mode enabled', but the value written has neither bit set")
    s.w(CPU0, saved_primary)
    s.w(CPU1, saved_secondary)


def test_virtual_intr_ctls(s):
    s.at("test_virtual_intr_ctls", "4249-4287")
    saved = s.r(CPU0), s.r(CPU1), s.r(PIN)
    primary, secondary, pin = saved
    k = kvm(EXEC + " -> nested_vmx_check_apicv_controls()",
            "CC(nested_cpu_has_vid(vmcs12) && !nested_exit_on_intr(vcpu))")
    s.w(CPU0, primary | CPU_SECONDARY | CPU_TPR_SHADOW)
    s.w(CPU1, secondary & ~CPU_VINTD)
    s.w(PIN, pin & ~PIN_EXTINT)
    s.valid("vid-off-extint-off", "VID off, external-interrupt exiting off")
    s.w(CPU1, secondary | CPU_VINTD)
    s.vmfail("vid-on-extint-off", "VID on, external-interrupt exiting off", 7, k, "X9b")
    s.w(PIN, pin | PIN_EXTINT)
    s.valid("vid-on-extint-on", "VID on, external-interrupt exiting on")
    s.w(PIN, pin & ~PIN_EXTINT)
    s.vmfail("vid-on-extint-off-again", "VID on, external-interrupt exiting off", 7, k, "X9b")
    s.w(CPU0, saved[0])
    s.w(CPU1, saved[1])
    s.w(PIN, saved[2])


def test_posted_intr(s):
    s.at("test_posted_intr", "4289-4419")
    saved_primary, saved_secondary, saved_pin = s.r(CPU0), s.r(CPU1), s.r(PIN)
    exit_ctl = s.r(EXI)
    primary, secondary, pin = saved_primary, saved_secondary, saved_pin
    kp = EXEC + " -> nested_vmx_check_apicv_controls()"
    k_vid = kvm(kp, "nested_cpu_has_posted_intr(vmcs12) && CC(!nested_cpu_has_vid(vmcs12))")
    k_ack = kvm(kp, "nested_cpu_has_posted_intr(vmcs12) && CC(!nested_exit_intr_ack_set(vcpu))")
    k_nv = kvm(kp, "nested_cpu_has_posted_intr(vmcs12) && CC((vmcs12->posted_intr_nv & 0xff00))")
    k_desc = kvm(kp, "nested_cpu_has_posted_intr(vmcs12) && CC(!kvm_vcpu_is_legal_aligned_gpa(vcpu, "
                     "vmcs12->posted_intr_desc_addr, 64))")
    s.w(CPU0, primary | CPU_SECONDARY | CPU_TPR_SHADOW)
    pin |= PIN_POST_INTR
    s.w(PIN, pin)
    secondary &= ~CPU_VINTD
    s.w(CPU1, secondary)
    s.vmfail("posted-vid-off", "posted interrupts on, VID off", 7, k_vid, "X9c")
    secondary |= CPU_VINTD
    s.w(CPU1, secondary)
    s.vmfail("posted-vid-on-ack-off", "posted interrupts on, VID on, ack-interrupt-on-exit off", 7, k_ack,
             "X9c")
    exit_ctl &= ~EXI_INTA
    s.w(EXI, exit_ctl)
    s.vmfail("posted-vid-on-ack-cleared", "EXI_CONTROLS &= ~EXI_INTA", 7, k_ack, "X9c")
    exit_ctl |= EXI_INTA
    s.w(EXI, exit_ctl)
    s.valid("posted-vid-on-ack-on", "EXI_CONTROLS |= EXI_INTA",
            "POSTED_INTR_DESC_ADDR and PINV are still 0: a legal 64-byte aligned address and vector 0")
    secondary &= ~CPU_VINTD
    s.w(CPU1, secondary)
    s.vmfail("posted-ack-on-vid-off", "VID off again", 7, k_vid, "X9c")
    secondary |= CPU_VINTD
    s.w(CPU1, secondary)
    s.valid("posted-ack-on-vid-on", "VID on again")
    vec = 0
    for i in range(16):
        vec = 1 << i
        s.w(PINV, vec)
        if i < 8:
            s.valid(f"posted-nv-{vec:#x}", f"PINV = {vec:#x}")
        else:
            s.vmfail(f"posted-nv-{vec:#x}", f"PINV = {vec:#x}", 7, k_nv, "X9c")
    vec &= ~(0xFF << 8)
    s.w(PINV, vec)
    s.valid("posted-nv-cleared", f"PINV = vec & ~(0xff << 8) = {vec:#x}")
    for addr, ok in [(1 << i, False) for i in range(6)] + [(0xF0, False), (0xFF, False), (0x0F, False),
                                                           (0x8000, True), (0x00, True), (0xC000, True)]:
        s.w(POSTED_INTR_DESC_ADDR, addr)
        c = f"POSTED_INTR_DESC_ADDR = {addr:#x}"
        if ok:
            s.valid(f"posted-desc-{addr:#x}", c)
        else:
            s.vmfail(f"posted-desc-{addr:#x}", c, 7, k_desc, "X9c")
    vmcs_addr_cases(s, POSTED_INTR_DESC_ADDR, "POSTED_INTR_DESC_ADDR", "posted-desc-values", 64, False, False,
                    0, 63, k_desc, "X9c",
                    notes="a legal descriptor address without memory is accepted: nested_get_vmcs12_pages() "
                          "then clears PIN_BASED_POSTED_INTR in vmcs02")
    s.w(CPU0, saved_primary)
    s.w(CPU1, saved_secondary)
    s.w(PIN, saved_pin)
    # EXI_CONTROLS keeps EXI_INTA, PINV stays 0 and POSTED_INTR_DESC_ADDR 0xc000: the C code
    # does not restore them.


def set_vtpr(s, vtpr):
    """set_vtpr(): the u32 at APIC_TASKPRI (0x80) of a page memset to 0xff."""
    s.mem[VIRTUAL_APIC_PAGE + 0x80] = 0xFFFFFFFF00000000 | (vtpr & 0xFFFFFFFF)


def test_tpr_threshold(s):
    s.at("test_tpr_threshold", "4471-4944", "TPR threshold")
    s.pre = s.pre + ["the virtual-APIC page is all 0xff; memory lists its vTPR word (offset 0x80)"]
    primary, apic_virt_addr, threshold = s.r(CPU0), s.r(APIC_VIRT_ADDR), s.r(TPR_THRESHOLD)
    s.mem[VIRTUAL_APIC_PAGE + 0x80] = MASK64
    s.w(APIC_VIRT_ADDR, VIRTUAL_APIC_PAGE)
    k_thr = kvm(EXEC + " -> nested_vmx_check_tpr_shadow_controls()",
                "CC(!nested_cpu_has_vid(vmcs12) && vmcs12->tpr_threshold >> 4)")
    k_vtpr = (f"{SDM} 27.2.1.1 (with the TPR shadow on and virtual-interrupt delivery and virtualize APIC "
              "accesses off, TPR threshold bits 3:0 must not exceed vTPR bits 7:4): "
              f"{NESTED_C} nested_vmx_check_tpr_shadow_controls() compares the vTPR only with "
              "warn_on_missed_cc, so KVM passes the entry; prepare_vmcs02_early() copies vmcs12's TPR "
              "threshold into vmcs02 and nested_get_vmcs12_pages() maps L1's virtual-APIC page, the CPU "
              "VMfails vmcs02, and nested_vmx_reflect_vmexit() (vmx->fail) -> __nested_vmx_vmexit() ends "
              "in nested_vmx_fail(vcpu, VMXERR_ENTRY_INVALID_CONTROL_FIELD): the late VMfail")

    def blk():
        tpr = bool(s.r(CPU0) & CPU_TPR_SHADOW)
        sec = bool(s.r(CPU0) & CPU_SECONDARY)
        return f"tpr{int(tpr)}-sec{int(sec)}-ctl1-{s.r(CPU1):#x}"

    def try_vtpr(thr, vtpr):
        p, sec = s.r(CPU0), s.r(CPU1)
        ok = True
        if p & CPU_TPR_SHADOW and (not p & CPU_SECONDARY or not sec & (CPU_VINTD | CPU_VIRT_APIC_ACCESSES)):
            ok = (thr & 0xF) <= ((vtpr >> 4) & 0xF)
        set_vtpr(s, vtpr)
        tag = f"tpr-{blk()}-thr-{thr:#x}-vtpr-{vtpr & 0xFFFFFFFF:#x}"
        c = f"TPR_THRESHOLD = {thr:#x}; vTPR = {vtpr & 0xFFFFFFFF:#x} (class {(vtpr >> 4) & 0xF:#x})"
        if ok:
            s.valid(tag, c)
        else:
            s.emit(tag, c, "vmfail_valid:7", None, k_vtpr, "vmx.l2.vcpu_run", "cpu")

    def try_thr(thr):
        p, sec = s.r(CPU0), s.r(CPU1)
        ok = True
        if p & CPU_TPR_SHADOW and not (p & CPU_SECONDARY and sec & CPU_VINTD):
            ok = not (thr >> 4)
        set_vtpr(s, 0xFFFFFFFF)
        s.w(TPR_THRESHOLD, thr)
        tag = f"tpr-{blk()}-thr-{thr:#x}"
        c = f"TPR_THRESHOLD = {thr:#x}; vTPR = 0xffffffff (class 0xf)"
        kut_vmlaunch_controls(s, tag, c, ok, k_thr, "X7b")
        if ok:
            for vtpr in ((thr - 1) << 4, thr << 4, (thr + 1) << 4):
                try_vtpr(thr, vtpr & 0xFFFFFFFF)

    def values():
        for i in range(0x10):
            try_thr(i)
        for i in range(4, 32):
            try_thr(1 << i)
        try_thr(0xFFFFFFFF)
        try_thr(0x7FFFFFFF)

    s.w(CPU0, primary & ~(CPU_TPR_SHADOW | CPU_SECONDARY))
    values()
    s.w(CPU0, s.r(CPU0) | CPU_TPR_SHADOW)
    values()
    secondary = s.r(CPU1)
    # VINTD
    s.w(CPU1, CPU_VINTD)
    values()
    s.w(CPU0, s.r(CPU0) | CPU_SECONDARY)
    values()
    # VIRT_APIC_ACCESSES
    s.w(CPU0, s.r(CPU0) & ~CPU_SECONDARY)
    s.w(CPU1, CPU_VIRT_APIC_ACCESSES)
    values()
    s.w(CPU0, s.r(CPU0) | CPU_SECONDARY)
    values()
    # both
    s.w(CPU0, s.r(CPU0) & ~CPU_SECONDARY)
    s.w(CPU1, CPU_VINTD | CPU_VIRT_APIC_ACCESSES)
    values()
    s.w(CPU0, s.r(CPU0) | CPU_SECONDARY)
    values()
    s.w(CPU1, secondary)
    s.w(TPR_THRESHOLD, threshold)
    s.w(APIC_VIRT_ADDR, apic_virt_addr)
    s.w(CPU0, primary)
    s.mem.clear()           # the page stays allocated, but nothing points at it any more
    s.pre = s.pre[:-1]


def test_nmi_ctrls(s):
    s.at("test_nmi_ctrls", "4957-5027", "NMI controls")
    pin_ctrls, cpu_ctrls0 = s.r(PIN), s.r(CPU0)
    test_pin = pin_ctrls & ~(PIN_NMI | PIN_VIRT_NMI)
    test_cpu0 = cpu_ctrls0 & ~CPU_NMI_WINDOW
    k1 = kvm(EXEC + " -> nested_vmx_check_nmi_controls()",
             "CC(!nested_cpu_has_nmi_exiting(vmcs12) && nested_cpu_has_virtual_nmis(vmcs12))")
    k2 = kvm(EXEC + " -> nested_vmx_check_nmi_controls()",
             "CC(!nested_cpu_has_virtual_nmis(vmcs12) && nested_cpu_has(vmcs12, CPU_BASED_NMI_WINDOW_EXITING))")
    s.w(PIN, test_pin)
    s.valid("nmi-exiting-off-vnmi-off", "NMI exiting off, virtual NMIs off")
    s.w(PIN, test_pin | PIN_VIRT_NMI)
    s.vmfail("nmi-exiting-off-vnmi-on", "NMI exiting off, virtual NMIs on", 7, k1, "X10")
    s.w(PIN, test_pin | PIN_NMI | PIN_VIRT_NMI)
    s.valid("nmi-exiting-on-vnmi-on", "NMI exiting on, virtual NMIs on")
    s.w(PIN, test_pin | PIN_NMI)
    s.valid("nmi-exiting-on-vnmi-off", "NMI exiting on, virtual NMIs off")
    s.w(PIN, test_pin)
    s.w(CPU0, test_cpu0 | CPU_NMI_WINDOW)
    s.vmfail("vnmi-off-nmi-window-on", "virtual NMIs off, NMI-window exiting on", 7, k2, "X10")
    s.w(PIN, test_pin)
    s.w(CPU0, test_cpu0)
    s.valid("vnmi-off-nmi-window-off", "virtual NMIs off, NMI-window exiting off")
    s.w(PIN, test_pin | PIN_NMI | PIN_VIRT_NMI)
    s.w(CPU0, test_cpu0 | CPU_NMI_WINDOW)
    s.valid("vnmi-on-nmi-window-on", "virtual NMIs on, NMI-window exiting on")
    s.w(PIN, test_pin | PIN_NMI | PIN_VIRT_NMI)
    s.w(CPU0, test_cpu0)
    s.valid("vnmi-on-nmi-window-off", "virtual NMIs on, NMI-window exiting off")
    s.w(CPU0, cpu_ctrls0)
    s.w(PIN, pin_ctrls)


def setup_ept(s, hpa):
    """__setup_ept(hpa, false): EPTP = hpa | WB | page-walk length 4; ACTIVATE_SECONDARY; EPT, and MBEC
    (is_mbec_supported())."""
    s.w(EPTP, hpa | EPT_MEM_TYPE_WB | 3 << EPTP_PG_WALK_LEN_SHIFT)
    s.w(CPU0, s.r(CPU0) | CPU_SECONDARY)
    s.w(CPU1, s.r(CPU1) | CPU_EPT | CPU_MODE_BASED_EPT_EXEC)


def test_pml(s):
    s.at("test_pml", "5283-5327", "PML")
    primary_saved, secondary_saved = s.r(CPU0), s.r(CPU1)
    primary, secondary = primary_saved, secondary_saved
    k_ept = kvm(EXEC + " -> nested_vmx_check_pml_controls()", "CC(!nested_cpu_has_ept(vmcs12))")
    k_addr = kvm(EXEC + " -> nested_vmx_check_pml_controls()", "CC(!page_address_valid(vcpu, vmcs12->pml_address))")
    primary |= CPU_SECONDARY
    s.w(CPU0, primary)
    secondary &= ~(CPU_PML | CPU_EPT | CPU_MODE_BASED_EPT_EXEC)
    s.w(CPU1, secondary)
    s.valid("pml-off-ept-off", "enable-PML off, enable-EPT off")
    secondary |= CPU_PML
    s.w(CPU1, secondary)
    s.vmfail("pml-on-ept-off", "enable-PML on, enable-EPT off", 7, k_ept, "X11")
    secondary |= CPU_EPT
    setup_ept(s, 0)
    s.valid("pml-on-ept-on", "enable-PML on, enable-EPT on (setup_dummy_ept(): EPTP 0x1e, MBEC too)")
    secondary &= ~CPU_PML
    s.w(CPU1, secondary)
    s.valid("pml-off-ept-on", "enable-PML off, enable-EPT on (CPU_EXEC_CTRL1 = secondary drops MBEC)")
    s.at("test_pml > test_vmcs_addr_reference", "3948-4049, 5283-5327")
    test_vmcs_addr_reference(s, CPU_PML, PMLADDR, "PMLADDR", "pml-addr", PAGE, False, False, k_addr, "X11")
    s.w(CPU0, primary_saved)
    s.w(CPU1, secondary_saved)
    # EPTP keeps setup_dummy_ept()'s 0x1e


def test_vpid(s):
    s.at("test_vpid", "4435-4469", "VPID")
    saved_primary, saved_secondary = s.r(CPU0), s.r(CPU1)
    k = kvm(EXEC, "CC(nested_cpu_has_vpid(vmcs12) && !vmcs12->virtual_processor_id)")
    s.w(CPU0, saved_primary | CPU_SECONDARY)
    s.w(CPU1, saved_secondary & ~CPU_VPID)
    s.w(VPID, 0)
    s.valid("vpid-off-0", "VPID disabled, VPID 0")
    s.w(CPU1, saved_secondary | CPU_VPID)
    s.vmfail("vpid-on-0", "VPID enabled, VPID 0", 7, k, "X15")
    for i in range(16):
        s.w(VPID, 1 << i)
        s.valid(f"vpid-on-{1 << i:#x}", f"VPID enabled, VPID {1 << i:#x}")
    s.w(CPU0, saved_primary)
    s.w(CPU1, saved_secondary)
    # VPID stays 0x8000


def test_ept_eptp(s):
    s.at("test_ept_eptp", "5029-5207", "EPTP")
    primary_saved, secondary_saved, eptp_saved = s.r(CPU0), s.r(CPU1), s.r(EPTP)
    k_mt = kvm(EXEC + " -> nested_vmx_check_eptp()",
               "memory type: VMX_EPTP_MT_UC needs VMX_EPTP_UC_BIT (CC), WB needs VMX_EPTP_WB_BIT, any other "
               "type -> return false")
    k_pwl = kvm(EXEC + " -> nested_vmx_check_eptp()",
                "page-walk length: VMX_EPTP_PWL_4 or (with VMX_EPT_PAGE_WALK_5_BIT) VMX_EPTP_PWL_5, "
                "anything else -> return false")
    k_rsvd = kvm(EXEC + " -> nested_vmx_check_eptp()",
                 "CC(!kvm_vcpu_is_legal_gpa(vcpu, new_eptp) || ((new_eptp >> 7) & 0x1f))")
    k_urg = kvm(EXEC + " -> nested_vmx_check_unrestricted_guest_controls()",
                "CC(nested_cpu_has2(vmcs12, SECONDARY_EXEC_UNRESTRICTED_GUEST) && !nested_cpu_has_ept(vmcs12))")
    setup_ept(s, 0xFED40000)
    s.valid("eptp-setup-0xfed40000", "__setup_ept(0xfed40000, false): EPTP = 0xfed4001e",
            "no memory backs 0xfed40000 in kvm-unit-tests; KVM's shadow EPT MMU uses a dummy root for it")
    setup_ept(s, 0)
    secondary, eptp = s.r(CPU1), s.r(EPTP)
    for i in range(8):
        eptp = (eptp & ~7) | i
        s.w(EPTP, eptp)
        kut_vmlaunch_controls(s, f"eptp-memtype-{i}", f"EPTP = {eptp:#x} (memory type {i})",
                              i == EPT_MEM_TYPE_WB, k_mt, "X17")
    eptp = (eptp & ~7) | 6
    for i in range(8):
        eptp = (eptp & ~0x38) | (i << EPTP_PG_WALK_LEN_SHIFT)
        s.w(EPTP, eptp)
        kut_vmlaunch_controls(s, f"eptp-walk-length-{i}", f"EPTP = {eptp:#x} (page-walk field {i})",
                              i in (3, 4), k_pwl, "X17",
                              "4 is a 5-level walk, which KVM offers (VMX_EPT_PAGE_WALK_5_BIT)" if i == 4 else "")
    eptp = (eptp & ~0x38) | 3 << EPTP_PG_WALK_LEN_SHIFT
    # ept_ad_bits_supported()
    eptp &= ~EPTP_AD_FLAG
    s.w(EPTP, eptp)
    s.valid("eptp-ad-0", f"EPTP = {eptp:#x} (A/D flag 0)")
    eptp |= EPTP_AD_FLAG
    s.w(EPTP, eptp)
    s.valid("eptp-ad-1", f"EPTP = {eptp:#x} (A/D flag 1; KVM offers VMX_EPT_AD_BIT)")
    for i in range(32):
        eptp = (eptp & ~(0x1F << 7)) | (i << 7)
        s.w(EPTP, eptp)
        kut_vmlaunch_controls(s, f"eptp-rsvd-11-7-{i:#x}", f"EPTP = {eptp:#x} (bits 11:7 = {i:#x})", i == 0,
                              k_rsvd, "X17")
    eptp &= ~(0x1F << 7)
    resv_bits_mask = 0
    for i in range(63 - M + 1):
        resv_bits_mask |= 1 << i
    for j in range(M - 1, 64):
        eptp = (eptp & ~(resv_bits_mask << M) & MASK64) | (0 if j < M else 1 << j)
        s.w(EPTP, eptp)
        kut_vmlaunch_controls(s, f"eptp-bit{j}", f"EPTP = {eptp:#x}", j < M, k_rsvd, "X17")
    secondary &= ~(CPU_URG | CPU_EPT | CPU_MODE_BASED_EPT_EXEC)
    s.w(CPU1, secondary)
    s.valid("ept-off-urg-off", "enable-EPT off, unrestricted guest off")
    secondary |= CPU_URG
    s.w(CPU1, secondary)
    s.vmfail("ept-off-urg-on", "enable-EPT off, unrestricted guest on", 7, k_urg, "X12")
    secondary |= CPU_EPT
    setup_ept(s, 0)
    s.valid("ept-on-urg-on", "enable-EPT on, unrestricted guest on (setup_dummy_ept())")
    secondary &= ~CPU_URG
    s.w(CPU1, secondary)
    s.valid("ept-on-urg-off", "enable-EPT on, unrestricted guest off (CPU_EXEC_CTRL1 = secondary)")
    s.w(CPU0, primary_saved)
    s.w(CPU1, secondary_saved)
    s.w(EPTP, eptp_saved)


def test_mode_based_execute_control(s):
    s.at("test_mode_based_execute_control", "5225-5270", "MBEC")
    primary_saved, secondary_saved = s.r(CPU0), s.r(CPU1)
    primary, secondary = primary_saved | CPU_SECONDARY, secondary_saved
    k = kvm(EXEC + " -> nested_vmx_check_mode_based_ept_exec_controls()",
            "CC(nested_cpu_has2(vmcs12, SECONDARY_EXEC_MODE_BASED_EPT_EXEC) && !nested_cpu_has_ept(vmcs12))")
    s.w(CPU0, primary)
    secondary &= ~(CPU_MODE_BASED_EPT_EXEC | CPU_EPT)
    s.w(CPU1, secondary)
    s.valid("mbec-off-ept-off", "MBEC off, EPT off")
    secondary |= CPU_MODE_BASED_EPT_EXEC
    s.w(CPU1, secondary)
    s.vmfail("mbec-on-ept-off", "MBEC on, EPT off", 7, k, "X13")
    secondary |= CPU_EPT
    setup_ept(s, 0)
    s.valid("mbec-on-ept-on", "MBEC on, EPT on (setup_dummy_ept())")
    secondary &= ~CPU_MODE_BASED_EPT_EXEC
    s.w(CPU1, secondary)
    s.valid("mbec-off-ept-on", "MBEC off, EPT on")
    s.w(CPU0, primary_saved)
    s.w(CPU1, secondary_saved)


def test_vmx_preemption_timer(s):
    s.at("test_vmx_preemption_timer", "5335-5376", "preemption timer")
    saved_pin, saved_exit = s.r(PIN), s.r(EXI)
    pin, exit_ = saved_pin, saved_exit
    k = kvm(EXEC, "if (!nested_cpu_has_preemption_timer(vmcs12) && nested_cpu_has_save_preemption_timer(vmcs12)) "
                  "return -EINVAL")
    pin |= PIN_PREEMPT
    s.w(PIN, pin)
    exit_ &= ~EXI_SAVE_PREEMPT
    s.w(EXI, exit_)
    s.valid("preempt-on-save-off", "activate preemption timer on, save value off")
    exit_ |= EXI_SAVE_PREEMPT
    s.w(EXI, exit_)
    s.valid("preempt-on-save-on", "activate preemption timer on, save value on")
    pin &= ~PIN_PREEMPT
    s.w(PIN, pin)
    s.vmfail("preempt-off-save-on", "activate preemption timer off, save value on", 7, k, "X16")
    exit_ &= ~EXI_SAVE_PREEMPT
    s.w(EXI, exit_)
    s.valid("preempt-off-save-off", "activate preemption timer off, save value off")
    s.w(PIN, saved_pin)
    s.w(EXI, saved_exit)


def msr_list_cases(s, cnt_field, addr_field, page, cnt_name, addr_name, slug, chain, model, valid_fn):
    k_align = kvm(chain, "!kvm_vcpu_is_legal_aligned_gpa(vcpu, addr, 16) -> -EINVAL (CC() wraps the call)")
    k_last = kvm(chain, "!kvm_vcpu_is_legal_gpa(vcpu, (addr + count * sizeof(struct vmx_msr_entry) - 1)) -> "
                        "-EINVAL (CC() wraps the call)")
    s.w(cnt_field, 1)
    for i in range(4):
        tmp = page | 1 << i
        s.w(addr_field, tmp)
        s.vmfail(f"{slug}-addr-low-bit{i}", f"{cnt_name} = 1; {addr_name} = page | (1 << {i}) = {tmp:#x}", 7,
                 k_align, model)
    vmcs_addr_cases(s, addr_field, addr_name, f"{slug}-addr", 16, False, False, 4, 63, k_align, model,
                    valid=valid_fn)
    for i in range(M, 64):
        tmp = ((page + 15) | 1 << i) - 15
        s.w(addr_field, tmp)
        s.vmfail(f"{slug}-last-byte-bit{i}", f"{addr_name} = {tmp:#x} (the last byte sets bit {i})", 7,
                 k_align, model)
    s.w(cnt_field, 2)
    s.w(addr_field, (1 << M) - 16)
    s.vmfail(f"{slug}-count2-top-16", f"{cnt_name} = 2; {addr_name} = (1 << MAXPHYADDR) - 16", 7, k_last, model)
    s.w(addr_field, (1 << M) - 32)
    valid_fn(f"{slug}-count2-top-32", f"{cnt_name} = 2; {addr_name} = (1 << MAXPHYADDR) - 32")
    s.w(addr_field, (1 << M) - 48)
    valid_fn(f"{slug}-count2-top-48", f"{cnt_name} = 2; {addr_name} = (1 << MAXPHYADDR) - 48")


def test_exit_msr_store(s):
    s.at("test_vm_exit_ctls > test_exit_msr_store", "3948-3997, 6018-6074", "VM-exit MSR-store list")
    msr_list_cases(s, EXI_MSR_ST_CNT, EXIT_MSR_ST_ADDR, EXIT_MSR_STORE_PAGE, "EXI_MSR_ST_CNT", "EXIT_MSR_ST_ADDR",
                   "exit-msr-store",
                   EXITC + " -> nested_vmx_check_exit_msr_switch_controls() -> nested_vmx_check_msr_switch()",
                   "X19", lambda tag, c, notes="": s.valid(
                       tag, c, "a failed VM entry stores no MSRs (prepare_vmcs12() skips nested_vmx_store_msr() "
                               "for VMX_EXIT_REASONS_FAILED_VMENTRY)"))
    # EXI_MSR_ST_CNT stays 2 at (1 << MAXPHYADDR) - 48 for the rest of vmx_controls_test


def test_invalid_event_injection(s):
    s.at("test_vm_entry_ctls > test_invalid_event_injection", "4497-4797", "event injection")
    save = {f: s.r(f) for f in (ENT_INTR_INFO, ENT_INTR_ERROR, ENT_INST_LEN, CPU0, CPU1, GUEST_CR0)}
    base = INTR_INFO_VALID_MASK
    ke = lambda cc: kvm(ENTRYC, cc)   # noqa: E731
    k_type = ke("CC(intr_type == INTR_TYPE_RESERVED)")
    k_other = ke("CC(intr_type == INTR_TYPE_OTHER_EVENT && vector != 0)")
    k_nmi = ke("CC(intr_type == INTR_TYPE_NMI_INTR && vector != NMI_VECTOR)")
    k_hw31 = ke("CC(intr_type == INTR_TYPE_HARD_EXCEPTION && vector > 31)")
    k_code = ke("(!prot_mode || intr_type != INTR_TYPE_HARD_EXCEPTION): CC(has_error_code)")
    k_vec = ke("!nested_cpu_has_no_hw_errcode_cc(vcpu): CC(has_error_code != x86_exception_has_error_code(vector))")
    k_rsvd = ke("CC(intr_info & INTR_INFO_RESVD_BITS_MASK)")
    k_err = ke("CC(has_error_code && vmcs12->vm_entry_exception_error_code & GENMASK(31, 16))")
    k_len = ke("CC(vmcs12->vm_entry_instruction_len > X86_MAX_INSTRUCTION_LENGTH)")
    s.w(ENT_INTR_ERROR, 0)
    s.w(ENT_INST_LEN, 1)

    def inj(tag, info, ok, k=None, c=None, notes=""):
        s.w(ENT_INTR_INFO, info)
        c = c or f"ENT_INTR_INFO = {info:#x}"
        if ok:
            s.valid(f"evinj-{tag}", c, notes)
        else:
            s.vmfail(f"evinj-{tag}", c, 7, k, "X21", notes)

    inj("reserved-type", base | d.INTR_TYPE_RESERVED | x86.DE_VECTOR, False, k_type)
    inj("ext-intr-vector0", base | d.INTR_TYPE_EXT_INTR | x86.DE_VECTOR, True)
    inj("other-event-vector1", base | d.INTR_TYPE_OTHER_EVENT | x86.DB_VECTOR, False, k_other,
        notes="OTHER_EVENT itself is allowed: KVM offers the monitor trap flag")
    inj("nmi-vector0", base | d.INTR_TYPE_NMI_INTR | x86.DE_VECTOR, False, k_nmi)
    inj("nmi-vector2", base | d.INTR_TYPE_NMI_INTR | x86.NMI_VECTOR, True)
    inj("hw-vector0x20", base | d.INTR_TYPE_HARD_EXCEPTION | 0x20, False, k_hw31)
    guest_cr0 = save[GUEST_CR0]
    s.w(GUEST_CR0, guest_cr0 & ~x86.X86_CR0_PE & ~x86.X86_CR0_PG)
    inj("gp-no-code-cr0-pe-off-no-urg", base | d.INTR_TYPE_HARD_EXCEPTION | x86.GP_VECTOR, False, k_vec,
        c="GUEST_CR0 = cr0 & ~PE & ~PG; ENT_INTR_INFO = HW exception #GP, no error code",
        notes="without unrestricted guest prot_mode is true whatever CR0.PE says")
    s.w(ENT_INTR_INFO, base | INTR_INFO_DELIVER_CODE_MASK | d.INTR_TYPE_HARD_EXCEPTION | x86.GP_VECTOR)
    s.exit33("evinj-gp-code-cr0-pe-off-no-urg",
             "GUEST_CR0 = cr0 & ~PE & ~PG; ENT_INTR_INFO = HW exception #GP with error code",
             kvm(GUESTC, "CC(!nested_guest_cr0_valid(vcpu, vmcs12->guest_cr0)) (fixed0 PE|NE|PG without "
                         "unrestricted guest)"), "G1",
             notes="the controls are valid, as the test asserts; the VM entry then fails KVM's guest-state "
                   "check on CR0 (exit 33), which kvm-unit-tests' vmlaunch() counts as success")
    # enable_unrestricted_guest(false)
    setup_ept(s, 0)
    s.w(CPU0, s.r(CPU0) | CPU_SECONDARY)
    s.w(CPU1, s.r(CPU1) | CPU_URG)
    s.w(GUEST_CR0, guest_cr0 & ~x86.X86_CR0_PE & ~x86.X86_CR0_PG)
    inj("gp-code-cr0-pe-off-urg", base | INTR_INFO_DELIVER_CODE_MASK | d.INTR_TYPE_HARD_EXCEPTION | x86.GP_VECTOR,
        False, k_code, c="unrestricted guest on; GUEST_CR0 = cr0 & ~PE & ~PG; #GP with error code")
    s.w(GUEST_CR0, guest_cr0 | x86.X86_CR0_PE)
    inj("gp-no-code-cr0-pe-on-urg", base | d.INTR_TYPE_HARD_EXCEPTION | x86.GP_VECTOR, False, k_vec,
        c="unrestricted guest on; GUEST_CR0 = cr0 | PE; #GP without error code")
    s.w(CPU1, save[CPU1])
    s.w(CPU0, save[CPU0])
    s.w(GUEST_CR0, guest_cr0)
    for cnt in range(8):
        kind = cnt << 8
        code = INTR_INFO_DELIVER_CODE_MASK if kind != d.INTR_TYPE_HARD_EXCEPTION else 0
        k = {0: k_code, 1: k_type, 2: k_nmi, 3: k_vec, 4: k_code, 5: k_code, 6: k_code, 7: k_other}[cnt]
        inj(f"type{cnt}-gp-code-mismatch", base | code | kind | x86.GP_VECTOR, False, k)
    for cnt in range(32):
        if cnt in ERROR_CODE_VECTORS or cnt == x86.CP_VECTOR:
            continue        # the C switch falls through to "continue" for every error-code vector
        inj(f"hw-vector{cnt}-code", base | INTR_INFO_DELIVER_CODE_MASK | d.INTR_TYPE_HARD_EXCEPTION | cnt,
            False, k_vec)
        inj(f"hw-vector{cnt}-no-code", base | d.INTR_TYPE_HARD_EXCEPTION | cnt, True)
    for cnt in range(12, 31):
        inj(f"rsvd-bit{cnt}",
            base | INTR_INFO_DELIVER_CODE_MASK | d.INTR_TYPE_HARD_EXCEPTION | x86.GP_VECTOR | (1 << cnt), False,
            k_rsvd)
    s.w(ENT_INTR_INFO, base | INTR_INFO_DELIVER_CODE_MASK | d.INTR_TYPE_HARD_EXCEPTION | x86.GP_VECTOR)
    for cnt in range(16, 32):
        s.w(ENT_INTR_ERROR, 1 << cnt)
        s.vmfail(f"evinj-error-code-bit{cnt}", f"#GP with error code; ENT_INTR_ERROR = {1 << cnt:#x}", 7, k_err,
                 "X21")
    s.w(ENT_INTR_ERROR, 0)
    for name, kind in (("soft-intr", d.INTR_TYPE_SOFT_INTR), ("soft-exception", d.INTR_TYPE_SOFT_EXCEPTION),
                       ("priv-sw-exception", d.INTR_TYPE_PRIV_SW_EXCEPTION)):
        s.w(ENT_INTR_INFO, base | kind)
        for length in (0xFFFFFFFF, 0x10):
            s.w(ENT_INST_LEN, length)
            s.vmfail(f"evinj-{name}-len-{length:#x}", f"ENT_INTR_INFO = {base | kind:#x}; ENT_INST_LEN = {length:#x}",
                     7, k_len, "X21")
    for f, v in save.items():
        s.w(f, v)
    # EPTP keeps setup_dummy_ept()'s 0x1e


def test_entry_msr_load(s):
    s.at("test_vm_entry_ctls > test_entry_msr_load", "3948-3997, 5753-5801", "VM-entry MSR-load list")
    s.pre = s.pre + [P_MEM0]

    def loads(tag, c, notes=""):
        s.emit(tag, c, "vmexit:34", 1, K_MSR_ZERO, "vmx.enter.load_msr", "kvm",
               "kvm-unit-tests' vmlaunch() accepts exit 33 or 34 here: what KVM loads is whatever the address "
               "holds; with zeroes (or no memory behind it) entry 1 fails: exit 34, qualification 1")

    msr_list_cases(s, ENT_MSR_LD_CNT, ENTER_MSR_LD_ADDR, ENTRY_MSR_PAGE, "ENT_MSR_LD_CNT", "ENTER_MSR_LD_ADDR",
                   "entry-msr-load",
                   ENTRYC + " -> nested_vmx_check_entry_msr_switch_controls() -> nested_vmx_check_msr_switch()",
                   "X22", loads)
    s.pre = s.pre[:-1]


# --- vmx_host_state_area_test ----------------------------------------------------------------

def vmlaunch_host(s, tag, c, error, kernel="", model=None, notes="", gap=None):
    """test_vmx_vmlaunch(error) in the host-state test: 0 = the entry passes KVM's checks."""
    if not error:
        s.valid(tag, c, notes, gap)
    else:
        s.vmfail(tag, c, error, kernel, model, notes, gap)


def test_ctl_reg(s, name, field, fixed0, fixed1, kernel, model):
    saved = s.r(field)
    val = fixed0 & fixed1
    s.w(field, val | x86.X86_CR4_PAE if field == HOST_CR4 else val)
    vmlaunch_host(s, f"{name.lower()}-fixed0-and-fixed1", f"{name} = {s.r(field):#x}",
                  0 if val == fixed0 else 8, kernel, model)
    for i in range(64):
        if not fixed1 & (1 << i):
            if field == HOST_CR4 and (1 << i) & (x86.X86_CR4_SMEP | x86.X86_CR4_SMAP):
                continue
            s.w(field, saved | 1 << i)
            vmlaunch_host(s, f"{name.lower()}-set-bit{i}", f"{name} = saved | (1ull << {i}) = {s.r(field):#x}",
                          8, kernel, model)
        if fixed0 & (1 << i):
            s.w(field, saved & ~(1 << i))
            vmlaunch_host(s, f"{name.lower()}-clear-bit{i}", f"{name} = saved & ~(1ull << {i}) = {s.r(field):#x}",
                          8, kernel, model)
    s.w(field, saved)


def is_canonical(addr, bits=48):
    """kvm-unit-tests' is_canonical(): CPUID's linear-address width (48 without LA57)."""
    top = addr >> (bits - 1)
    return top in (0, (1 << (65 - bits)) - 1)


def test_canonical(s, field, name, host, kernel, model, decided="kvm", gap=None):
    """test_canonical(): the saved value if it is canonical, then NONCANONICAL."""
    saved = s.r(field)
    slug = name.lower().replace("_", "-")
    if is_canonical(saved):
        s.valid(f"{slug}-canonical", f"{name} = {saved:#x} (the saved value)")
    s.w(field, NONCANONICAL)
    if host:
        s.vmfail(f"{slug}-noncanonical", f"{name} = NONCANONICAL", 8, kernel, model, gap=gap)
    else:
        s.exit33(f"{slug}-noncanonical", f"{name} = NONCANONICAL", kernel, model, decided, gap=gap)
    s.w(field, saved)


def efer_cases(s, fld, fld_name, ctrl_fld, ctrl_bit1, ctrl_bit2, host):
    """test_efer()"""
    slug = fld_name.lower().replace("_", "-")
    efer_saved, ctrl_saved = s.r(fld), s.r(ctrl_fld)
    efer_reserved_bits = MASK64 & ~(x86.EFER_SCE | x86.EFER_LME | x86.EFER_LMA | x86.EFER_NX)
    if host:
        k_rsvd = kvm(HOSTC, "vm_exit_controls & VM_EXIT_LOAD_IA32_EFER: CC(!kvm_valid_efer(vcpu, "
                            "vmcs12->host_ia32_efer))")
        k_lma = kvm(HOSTC, "vm_exit_controls & VM_EXIT_LOAD_IA32_EFER: CC(ia32e != !!(vmcs12->host_ia32_efer & "
                           "EFER_LMA))")
        k_lme = kvm(HOSTC, "vm_exit_controls & VM_EXIT_LOAD_IA32_EFER: CC(ia32e != !!(vmcs12->host_ia32_efer & "
                           "EFER_LME))")
        k_size = kvm(RUN + "nested_vmx_check_address_space_size()",
                     "CC(!!(vmcs12->vm_exit_controls & VM_EXIT_HOST_ADDR_SPACE_SIZE) != !!(vcpu->arch.efer & "
                     "EFER_LMA))")
        m_efer, m_size = "H10", "H0"
    else:
        k_rsvd = kvm(GUESTC, "nested_run_pending && vm_entry_controls & VM_ENTRY_LOAD_IA32_EFER: "
                             "CC(!kvm_valid_efer(vcpu, vmcs12->guest_ia32_efer))")
        k_lma = kvm(GUESTC, "nested_run_pending && VM_ENTRY_LOAD_IA32_EFER: CC(ia32e != "
                            "!!(vmcs12->guest_ia32_efer & EFER_LMA))")
        k_lme = kvm(GUESTC, "nested_run_pending && VM_ENTRY_LOAD_IA32_EFER: CC(((vmcs12->guest_cr0 & X86_CR0_PG) "
                            "&& ia32e != !!(vmcs12->guest_ia32_efer & EFER_LME)))")
        m_efer = "G8"
    note7or8 = "kvm-unit-tests accepts VM-instruction error 7 or 8 (test_vmx_vmlaunch2()); KVM reports 8"

    def launch(tag, ok, kernel, model, c, notes=""):
        if host:
            if ok:
                s.valid(tag, c, notes)
            else:
                s.vmfail(tag, c, 8, kernel, model, (notes + "; " if notes else "") + note7or8)
        else:
            if ok:
                s.valid(tag, c, notes)
            else:
                s.exit33(tag, c, kernel, model, notes=notes)

    launch(f"{slug}-saved", True, None, None, f"{fld_name} = {efer_saved:#x}")
    s.w(ctrl_fld, ctrl_saved & ~ctrl_bit1)
    for i in range(64):
        if (1 << i) & efer_reserved_bits:
            s.w(fld, efer_saved | 1 << i)
            launch(f"{slug}-rsvd-bit{i}-load-off", True, None, None,
                   f"load EFER off; {fld_name} = saved | (1ull << {i})", "the field is not loaded")
    s.w(ctrl_fld, ctrl_saved | ctrl_bit1)
    for i in range(64):
        if (1 << i) & efer_reserved_bits:
            s.w(fld, efer_saved | 1 << i)
            launch(f"{slug}-rsvd-bit{i}-load-on", False, k_rsvd, m_efer,
                   f"load EFER on; {fld_name} = saved | (1ull << {i})")
    s.w(ctrl_fld, ctrl_saved)
    s.w(fld, efer_saved)

    def efer_bit(ctrl_bit, efer_bit, bit_name, ctrl_name):
        e_saved, c_saved = s.r(fld), s.r(ctrl_fld)
        for i in range(4):
            efer = e_saved & ~efer_bit
            ctrl = c_saved & ~ctrl_bit
            if i & 1:
                efer |= efer_bit
            if i & 2:
                ctrl |= ctrl_bit
            # test_efer_one()
            ok = True
            mode = EXI_HOST_64 if host else ENT_GUEST_64
            load = EXI_LOAD_EFER if host else ENT_LOAD_EFER
            why = None
            if ctrl & load:
                if bool(efer & x86.EFER_LMA) != bool(ctrl & mode):
                    ok, why = False, "lma"
                elif bool(efer & x86.EFER_LME) != bool(ctrl & mode):
                    ok, why = False, "lme"
            if not host and ok and not ctrl & ENT_GUEST_64:
                continue        # "Skip the test if it would enter the guest in 32-bit mode"
            s.w(ctrl_fld, ctrl)
            s.w(fld, efer)
            tag = f"{slug}-{bit_name.lower()}-{'on' if i & 1 else 'off'}-{ctrl_name}-{'on' if i & 2 else 'off'}"
            c = (f"{fld_name} = {efer:#x} ({bit_name} {'on' if i & 1 else 'off'}); "
                 f"{ctrl_name} {'on' if i & 2 else 'off'}")
            if host and not ctrl & EXI_HOST_64:
                # L1 runs in long mode: nested_vmx_check_address_space_size() fails first, whatever EFER holds
                launch(tag, False, k_size, m_size, c,
                       "with the host address-space size control clear, nested_vmx_check_address_space_size() "
                       "fails before the host EFER checks (L1 is in long mode)")
            else:
                launch(tag, ok, k_lma if why == "lma" else k_lme, m_efer, c)
        s.w(ctrl_fld, c_saved)
        s.w(fld, e_saved)

    load_name = "EXI_LOAD_EFER" if host else "ENT_LOAD_EFER"
    mode_name = "EXI_HOST_64" if host else "ENT_GUEST_64"
    efer_bit(ctrl_bit1, x86.EFER_LMA, "LMA", load_name.lower().replace("_", "-"))
    efer_bit(ctrl_bit1, x86.EFER_LME, "LME", load_name.lower().replace("_", "-"))
    efer_bit(ctrl_bit2, x86.EFER_LMA, "LMA", mode_name.lower().replace("_", "-"))
    efer_bit(ctrl_bit2, x86.EFER_LME, "LME", mode_name.lower().replace("_", "-"))


def pat_cases(s, field, name, ctrl_field, ctrl_bit, host):
    slug = name.lower().replace("_", "-")
    ctrl_saved, pat_saved = s.r(ctrl_field), s.r(field)
    if host:
        k = kvm(HOSTC, "vm_exit_controls & VM_EXIT_LOAD_IA32_PAT: CC(!kvm_pat_valid(vmcs12->host_ia32_pat))")
        m = "H6"
    else:
        k = kvm(GUESTC, "vm_entry_controls & VM_ENTRY_LOAD_IA32_PAT: CC(!kvm_pat_valid(vmcs12->guest_ia32_pat))")
        m = "G4"

    def values():
        i = 0
        while i < 256:
            for j in range(8 if i else 1):
                yield i, j, (i << (j * 8)) & MASK64
            i = i + 1 if i < 8 else i * 2

    s.w(ctrl_field, s.r(ctrl_field) & ~ctrl_bit)
    for i, j, val in values():
        s.w(field, val)
        s.valid(f"{slug}-load-off-{val:#x}", f"load PAT off; {name} = {val:#x}")
    s.w(ctrl_field, s.r(ctrl_field) | ctrl_bit)
    for i, j, val in values():
        s.w(field, val)
        bad = i in (2, 3) or i >= 8
        c = f"load PAT on; {name} = {val:#x} (PA{j} = {i:#x})"
        if not bad:
            s.valid(f"{slug}-load-on-{val:#x}", c)
        elif host:
            s.vmfail(f"{slug}-load-on-{val:#x}", c, 8, k, m)
        else:
            s.exit33(f"{slug}-load-on-{val:#x}", c, k, m)
    s.w(ctrl_field, ctrl_saved)
    s.w(field, pat_saved)


def valid_pgc(val):
    mask = ~(((1 << PMU_GP) - 1) | (((1 << PMU_FIXED) - 1) << 32)) & MASK64
    return not val & mask


def perf_global_ctrl_cases(s, nr, name, ctrl_nr, ctrl_name, ctrl_val, host):
    slug = name.lower().replace("_", "-")
    ctrl_saved, pgc_saved = s.r(ctrl_nr), s.r(nr)
    # msr_bmp_init()
    s.w(CPU0, s.r(CPU0) | CPU_MSR_BITMAP)
    s.w(MSR_BITMAP, MSR_BITMAP_PAGE)
    if host:
        k = kvm(HOSTC, "vm_exit_controls & VM_EXIT_LOAD_IA32_PERF_GLOBAL_CTRL: CC(!kvm_valid_perf_global_ctrl("
                       "vcpu_to_pmu(vcpu), vmcs12->host_ia32_perf_global_ctrl))")
        m = "H6b"
    else:
        k = kvm(GUESTC, "vm_entry_controls & VM_ENTRY_LOAD_IA32_PERF_GLOBAL_CTRL: CC(!kvm_valid_perf_global_ctrl("
                        "vcpu_to_pmu(vcpu), vmcs12->guest_ia32_perf_global_ctrl))")
        m = "G5b"
    s.w(ctrl_nr, ctrl_saved & ~ctrl_val)
    for i in range(64):
        s.w(nr, 1 << i)
        s.valid(f"{slug}-load-off-bit{i}", f"{ctrl_name} load PERF_GLOBAL_CTRL off; {name} = 1ull << {i}")
    s.w(ctrl_nr, ctrl_saved | ctrl_val)
    for i in range(64):
        val = 1 << i
        s.w(nr, val)
        c = f"{ctrl_name} load PERF_GLOBAL_CTRL on; {name} = 1ull << {i}"
        tag = f"{slug}-load-on-bit{i}"
        if valid_pgc(val):
            s.valid(tag, c, "a counter the vPMU has (8 GP, 3 fixed)")
        elif host:
            s.vmfail(tag, c, 8, k, m)
        else:
            s.exit33(tag, c, k, m)
    s.w(ctrl_nr, ctrl_saved)
    s.w(nr, pgc_saved)


def vmx_host_state_area_test(out):
    s = Sim(out, "vmx_host_state_area_test", "8315-8335", "host CR0, CR3, CR4", [P_ENV, P_HOST])
    s.w(GUEST_RFLAGS, 0)
    s.at("test_host_ctl_regs > test_ctl_reg", "7538-7628", "host CR0, CR3, CR4")
    test_ctl_reg(s, "HOST_CR0", HOST_CR0, CR0_FIXED0, CR0_FIXED1,
                 kvm(HOSTC, "CC(!nested_host_cr0_valid(vcpu, vmcs12->host_cr0)) (cr0_fixed0 PE|NE|PG; "
                            f"cr0_fixed1 0xffffffff from {VMX_C} nested_vmx_cr_fixed1_bits_update())"), "H1")
    test_ctl_reg(s, "HOST_CR4", HOST_CR4, CR4_FIXED0, CR4_FIXED1 & ~(x86.X86_CR4_SMEP | x86.X86_CR4_SMAP),
                 kvm(HOSTC, "CC(!nested_host_cr4_valid(vcpu, vmcs12->host_cr4)) (cr4_fixed0 VMXE; cr4_fixed1 "
                            f"from L1's CPUID, {VMX_C} nested_vmx_cr_fixed1_bits_update())"), "H2")
    s.at("test_host_ctl_regs", "7597-7628")
    cr3_saved = s.r(HOST_CR3)
    for i in range(M, 64):
        s.w(HOST_CR3, cr3_saved | 1 << i)
        s.vmfail(f"host-cr3-bit{i}", f"HOST_CR3 = saved | (1ul << {i})", 8,
                 kvm(HOSTC, "CC(!kvm_vcpu_is_legal_cr3(vcpu, vmcs12->host_cr3))"), "H3",
                 "L1's CPUID has no LAM, so bits 61 and 62 are not exempt")
    s.w(HOST_CR3, cr3_saved)

    s.at("test_canonical", "8140-8172", "host SYSENTER")
    k_sysenter = kvm(HOSTC, "CC(is_noncanonical_msr_address(vmcs12->host_ia32_sysenter_esp/eip, vcpu))")
    test_canonical(s, HOST_SYSENTER_ESP, "HOST_SYSENTER_ESP", True, k_sysenter, "H5")
    test_canonical(s, HOST_SYSENTER_EIP, "HOST_SYSENTER_EIP", True, k_sysenter, "H5")

    s.at("test_host_efer > test_efer", "7630-7793", "host EFER")
    efer_cases(s, HOST_EFER, "HOST_EFER", EXI, EXI_LOAD_EFER, EXI_HOST_64, True)
    s.at("test_load_host_pat > test_pat", "7821-7911", "host PAT")
    pat_cases(s, HOST_PAT, "HOST_PAT", EXI, EXI_LOAD_PAT, True)

    s.at("test_host_segment_regs > test_vmcs_field", "8101-8138, 8191-8234", "host selectors and bases")
    k_sel = kvm(HOSTC, "CC(vmcs12->host_<seg>_selector & (SEGMENT_RPL_MASK | SEGMENT_TI_MASK))")
    k_zero = kvm(HOSTC, "CC(vmcs12->host_cs_selector == 0) / CC(vmcs12->host_tr_selector == 0)")
    for seg in ("cs", "ss", "ds", "es", "fs", "gs", "tr"):
        field = HOST_SEL(seg)
        saved = s.r(field)
        name = f"HOST_SEL_{seg.upper()}"
        # test_vmcs_field(reg, name, 0, 2, 0x0, true, 8): mask = bits 63:2, so only RPL is cleared
        s.w(field, saved & ~0x3)
        s.valid(f"host-sel-{seg}-rpl-ti-clear", f"{name} = {s.r(field):#x}")
        for i in (0, 2):
            s.w(field, saved | 1 << i)
            s.vmfail(f"host-sel-{seg}-bit{i}", f"{name} = saved | (1 << {i}) = {s.r(field):#x}", 8, k_sel, "H8")
        s.w(field, saved)
    for seg in ("cs", "tr"):
        field = HOST_SEL(seg)
        saved = s.r(field)
        name = f"HOST_SEL_{seg.upper()}"
        # test_vmcs_field(reg, name, 3, 15, 0x0000, false, 8): bits 14:3 cleared -> 0
        s.w(field, saved & ((MASK64 >> 15) << 15 | 0x7))
        s.vmfail(f"host-sel-{seg}-zero", f"{name} = {s.r(field):#x}", 8, k_zero, "H8")
        for i in range(3, 16, 2):
            # "bit_on = ((1ull < i) & ...) ? 0 : 1": a comparison, not a shift, so every bit is set
            s.w(field, saved | 1 << i)
            s.valid(f"host-sel-{seg}-set-bit{i}", f"{name} = saved | (1ull << {i}) = {s.r(field):#x}",
                    "test_vmcs_field() computes bit_on with '<' (a comparison): it always sets the bit, "
                    "and any nonzero selector with RPL and TI clear is valid")
        s.w(field, saved)
    s.at("test_host_segment_regs", "8191-8234")
    saved = s.r(HOST_SEL("ss"))
    s.w(HOST_SEL("ss"), 0)
    s.valid("host-sel-ss-zero-64bit-host", "HOST_SEL_SS = 0 with EXI_HOST_64",
            "CC(vmcs12->host_ss_selector == 0 && !ia32e) does not apply to a 64-bit host")
    s.w(HOST_SEL("ss"), saved)
    s.at("test_host_segment_regs > test_canonical", "8140-8172, 8191-8234")
    k_base = kvm(HOSTC, "CC(is_noncanonical_base_address(vmcs12->host_<fs,gs,gdtr,idtr,tr>_base, vcpu))")
    for seg in ("fs", "gs", "tr"):
        test_canonical(s, HOST_BASE(seg), f"HOST_BASE_{seg.upper()}", True, k_base, "H9")
    s.at("test_host_desc_tables > test_canonical", "8140-8172, 8240-8244")
    for seg in ("gdtr", "idtr"):
        test_canonical(s, HOST_BASE(seg), f"HOST_BASE_{seg.upper()}", True, k_base, "H9")

    s.at("test_host_addr_size", "8259-8309", "host address-space size")
    cr4_saved, rip_saved, entry_saved = s.r(HOST_CR4), s.r(HOST_RIP), s.r(ENT)
    s.w(ENT, entry_saved | ENT_GUEST_64)
    s.valid("host-addr-size-ia32e-guest", "ENT_CONTROLS |= ENT_GUEST_64 with a 64-bit host")
    s.w(HOST_CR4, cr4_saved | x86.X86_CR4_PCIDE)
    s.valid("host-addr-size-cr4-pcide", "HOST_CR4 |= PCIDE (L1's CPUID has PCID)")
    s.w(HOST_CR4, cr4_saved & ~x86.X86_CR4_PAE)
    s.vmfail("host-addr-size-cr4-pae-clear", "HOST_CR4 &= ~PAE", 8,
             kvm(HOSTC, "ia32e: CC(!(vmcs12->host_cr4 & X86_CR4_PAE))"), "H7")
    s.w(HOST_CR4, cr4_saved)
    s.w(HOST_RIP, NONCANONICAL)
    s.vmfail("host-addr-size-rip-noncanonical", "HOST_RIP = NONCANONICAL (test_vmx_vmlaunch_must_fail())", 8,
             kvm(HOSTC, "CC(is_l1_noncanonical_address_on_vmexit(vmcs12->host_rip, vmcs12))"), "H9")
    s.w(ENT, entry_saved | ENT_GUEST_64)
    s.w(HOST_RIP, rip_saved)
    s.w(HOST_CR4, cr4_saved)
    s.valid("host-addr-size-restore", "'restore host state': HOST_RIP and HOST_CR4 restored")

    s.at("test_load_host_perf_global_ctrl > test_perf_global_ctrl", "7939-8071", "host PERF_GLOBAL_CTRL")
    perf_global_ctrl_cases(s, HOST_PERF_GLOBAL_CTRL, "HOST_PERF_GLOBAL_CTRL", EXI, "EXI_CONTROLS", EXI_LOAD_PERF,
                           True)


# --- vmx_guest_state_area_test -----------------------------------------------------------------

def vmx_guest_state_area_test(out):
    s = Sim(out, "vmx_guest_state_area_test", "8631-8677", "guest SYSENTER", [P_ENV, P_GUEST], valid="l2")
    k_sysenter = cpu("27.3.1.1", "the IA32_SYSENTER_ESP and IA32_SYSENTER_EIP fields must be canonical "
                                 "(nested_vmx_check_guest_state() does not check them; prepare_vmcs02_rare() "
                                 "copies them into vmcs02)")
    s.at("test_canonical", "5831-5857, 8140-8172", "guest SYSENTER")
    test_canonical(s, GUEST_SYSENTER_ESP, "GUEST_SYSENTER_ESP", False, k_sysenter, "hw:sysenter", "cpu")
    test_canonical(s, GUEST_SYSENTER_EIP, "GUEST_SYSENTER_EIP", False, k_sysenter, "hw:sysenter", "cpu")

    s.at("test_guest_dr7", "8343-8370", "guest DR7")
    ent_saved, dr7_saved = s.r(ENT), s.r(GUEST_DR7)
    # ctrl_enter_rev.set & ENT_LOAD_DBGCTLS is 0 (KVM clears it from entry_ctls_low): the first loop is skipped
    s.w(ENT, s.r(ENT) | ENT_LOAD_DBGCTLS)
    for i in range(64):
        s.w(GUEST_DR7, 1 << i)
        c = f"ENT_LOAD_DBGCTLS on; GUEST_DR7 = 1ull << {i}"
        if i < 32:
            s.valid(f"guest-dr7-bit{i}", c)
        else:
            s.exit33(f"guest-dr7-bit{i}", c, kvm(GUESTC, "vm_entry_controls & VM_ENTRY_LOAD_DEBUG_CONTROLS: "
                                                         "CC(!kvm_dr7_valid(vmcs12->guest_dr7))"), "G3")
    s.w(GUEST_DR7, dr7_saved)
    s.w(ENT, ent_saved)

    s.at("test_load_guest_pat > test_pat", "5831-5857, 7821-7889, 8381-8392", "guest PAT")
    pat_cases(s, GUEST_PAT, "GUEST_PAT", ENT, ENT_LOAD_PAT, False)

    s.at("test_guest_efer > test_efer", "5831-5857, 7630-7812", "guest EFER")
    efer_cases(s, GUEST_EFER, "GUEST_EFER", ENT, ENT_LOAD_EFER, ENT_GUEST_64, False)

    s.at("test_load_guest_perf_global_ctrl > test_perf_global_ctrl", "5831-5857, 7939-8088",
         "guest PERF_GLOBAL_CTRL")
    perf_global_ctrl_cases(s, GUEST_PERF_GLOBAL_CTRL, "GUEST_PERF_GLOBAL_CTRL", ENT, "ENT_CONTROLS",
                           ENT_LOAD_PERF, False)

    s.at("test_load_guest_bndcfgs", "5831-5857, 8405-8436", "guest BNDCFGS")
    bnd_saved = s.r(GUEST_BNDCFGS)
    k_bnd = kvm(GUESTC, "vm_entry_controls & VM_ENTRY_LOAD_BNDCFGS: CC(is_noncanonical_msr_address("
                        "vmcs12->guest_bndcfgs & PAGE_MASK, vcpu)) || CC(vmcs12->guest_bndcfgs & "
                        "MSR_IA32_BNDCFGS_RSVD)")
    s.w(ENT, s.r(ENT) & ~ENT_LOAD_BNDCFGS)
    s.w(GUEST_BNDCFGS, NONCANONICAL)
    s.valid("guest-bndcfgs-load-off-noncanonical", "ENT_LOAD_BNDCFGS off; GUEST_BNDCFGS = NONCANONICAL")
    s.w(GUEST_BNDCFGS, bnd_saved | 0xFFC)
    s.valid("guest-bndcfgs-load-off-rsvd", "ENT_LOAD_BNDCFGS off; GUEST_BNDCFGS = saved | 0xffc")
    s.w(ENT, s.r(ENT) | ENT_LOAD_BNDCFGS)
    s.w(GUEST_BNDCFGS, NONCANONICAL)
    s.exit33("guest-bndcfgs-load-on-noncanonical", "ENT_LOAD_BNDCFGS on; GUEST_BNDCFGS = NONCANONICAL", k_bnd,
             "G8b")
    s.w(GUEST_BNDCFGS, bnd_saved | 0xFFC)
    s.exit33("guest-bndcfgs-load-on-rsvd", "ENT_LOAD_BNDCFGS on; GUEST_BNDCFGS = saved | 0xffc", k_bnd, "G8b")
    s.w(GUEST_BNDCFGS, bnd_saved)
    # ENT_LOAD_BNDCFGS stays set (vmcs_set_bits() is not undone), loading GUEST_BNDCFGS = 0 from here on

    test_guest_segment_sel_fields(s)
    test_guest_segment_base_addr_fields(s)

    s.at("test_canonical", "5831-5857, 8140-8172, 8631-8677", "guest GDTR and IDTR")
    k_dt = cpu("27.3.1.3", "the GDTR and IDTR base-address fields must be canonical")
    test_canonical(s, GUEST_BASE_GDTR, "GUEST_BASE_GDTR", False, k_dt, "hw:other", "cpu")
    test_canonical(s, GUEST_BASE_IDTR, "GUEST_BASE_IDTR", False, k_dt, "hw:other", "cpu")
    s.at("GDTR and IDTR limit loops", "5831-5857, 8631-8677")
    k_lim = cpu("27.3.1.3", "bits 31:16 of the GDTR and IDTR limit fields must be 0")
    for fld, name in ((GUEST_LIMIT_GDTR, "GUEST_LIMIT_GDTR"), (GUEST_LIMIT_IDTR, "GUEST_LIMIT_IDTR")):
        saved = s.r(fld)
        for i in range(16, 32):
            tmp = saved | 1 << i
            s.w(fld, tmp)
            s.exit33(f"{name.lower().replace('_', '-')}-bit{i}", f"{name} = {tmp:#x}", k_lim, "hw:other", "cpu")
        s.w(fld, saved)


def test_guest_segment_sel_fields(s):
    s.at("test_guest_segment_sel_fields", "5831-5857, 8465-8538", "guest segments")
    k_tr = kvm(PREP, f"CC(from_vmentry && !vmx_guest_state_valid(vcpu)) ({VMX_C} __vmx_guest_state_valid() -> "
                     "tr_valid(): TI set) -> ENTRY_FAIL_DEFAULT")
    k_ldtr = kvm(PREP, f"CC(from_vmentry && !vmx_guest_state_valid(vcpu)) ({VMX_C} __vmx_guest_state_valid() -> "
                       "ldtr_valid(): a usable LDTR with TI set) -> ENTRY_FAIL_DEFAULT")
    k_ss = kvm(PREP, f"CC(from_vmentry && !vmx_guest_state_valid(vcpu)) ({VMX_C} __vmx_guest_state_valid() -> "
                     "cs_ss_rpl_check(): SS.RPL != CS.RPL) -> ENTRY_FAIL_DEFAULT")
    note_kvm = ("KVM itself catches it: vmcs12 leaves unrestricted guest off, so vmx_guest_state_valid() runs "
                "__vmx_guest_state_valid() in prepare_vmcs02() (exit 33, qualification 0); the CPU's check "
                "(SDM 27.3.1.2) would say the same")
    sel_saved = s.r(GUEST_SEL("tr"))
    s.w(GUEST_SEL("tr"), sel_saved | GUEST_SEG_SEL_TI_MASK)
    s.exit33("guest-sel-tr-ti", "GUEST_SEL_TR = saved | TI", k_tr, "vmx.prep.guest_state_valid", notes=note_kvm)
    s.w(GUEST_SEL("tr"), sel_saved)

    sel_saved, ar_saved = s.r(GUEST_SEL("ldtr")), s.r(GUEST_AR("ldtr"))
    s.w(GUEST_AR("ldtr"), ar_saved | GUEST_SEG_UNUSABLE_MASK)
    s.w(GUEST_SEL("ldtr"), sel_saved | GUEST_SEG_SEL_TI_MASK)
    s.valid("guest-sel-ldtr-unusable-ti", "LDTR unusable; GUEST_SEL_LDTR = saved | TI")
    s.w(GUEST_SEL("ldtr"), sel_saved & ~GUEST_SEG_SEL_TI_MASK)
    s.valid("guest-sel-ldtr-unusable-no-ti", "LDTR unusable; GUEST_SEL_LDTR = saved & ~TI")
    s.w(GUEST_AR("ldtr"), ar_saved & ~GUEST_SEG_UNUSABLE_MASK)
    s.w(GUEST_SEL("ldtr"), sel_saved | GUEST_SEG_SEL_TI_MASK)
    s.exit33("guest-sel-ldtr-usable-ti", "LDTR usable; GUEST_SEL_LDTR = saved | TI", k_ldtr,
             "vmx.prep.guest_state_valid", notes=note_kvm)
    s.w(GUEST_SEL("ldtr"), sel_saved & ~GUEST_SEG_SEL_TI_MASK)
    s.valid("guest-sel-ldtr-usable-no-ti", "LDTR usable; GUEST_SEL_LDTR = saved & ~TI")
    s.w(GUEST_AR("ldtr"), ar_saved)
    s.w(GUEST_SEL("ldtr"), sel_saved)

    cpu0_saved, cpu1_saved, ar_saved = s.r(CPU0), s.r(CPU1), s.r(GUEST_AR("ss"))
    s.w(CPU1, cpu1_saved & ~CPU_URG)
    cs_rpl = s.r(GUEST_SEL_CS) & 3
    sel_saved = s.r(GUEST_SEL("ss"))
    bad, good = (sel_saved & ~3) | (~cs_rpl & 3), (sel_saved & ~3) | cs_rpl

    def ss(tag, sel, ok, usable, urg, notes=""):
        s.w(GUEST_SEL("ss"), sel)
        c = (f"unrestricted guest {'on' if urg else 'off'}; SS {'usable' if usable else 'unusable'}; "
             f"GUEST_SEL_SS = {sel:#x} (CS.RPL {cs_rpl})")
        if ok:
            s.valid(tag, c, notes)
        else:
            s.exit33(tag, c, k_ss, "vmx.prep.guest_state_valid", notes=note_kvm + (("; " + notes) if notes else ""))

    usable = not ar_saved & GUEST_SEG_UNUSABLE_MASK
    ss("guest-sel-ss-rpl-mismatch", bad, False, usable, False)
    ss("guest-sel-ss-rpl-match", good, True, usable, False)
    s.w(GUEST_AR("ss"), ar_saved & ~GUEST_SEG_UNUSABLE_MASK if not usable else ar_saved | GUEST_SEG_UNUSABLE_MASK)
    usable = not usable
    ss("guest-sel-ss-rpl-mismatch-toggled", bad, False, usable, False,
       "cs_ss_rpl_check() reads the selectors whether or not SS is usable")
    ss("guest-sel-ss-rpl-match-toggled", good, True, usable, False)
    # enable_unrestricted_guest(true): setup_ept(false) builds a real identity map
    setup_ept(s, EPT_PML4)
    s.w(CPU1, s.r(CPU1) | CPU_URG)
    ss("guest-sel-ss-rpl-mismatch-urg", bad, True, usable, True,
       "with unrestricted guest the RPL rule does not apply (KVM skips vmx_guest_state_valid(), "
       "is_unrestricted_guest())")
    ss("guest-sel-ss-rpl-match-urg", good, True, usable, True)
    if s.r(GUEST_AR("ss")) & GUEST_SEG_UNUSABLE_MASK:
        s.w(GUEST_AR("ss"), ar_saved & ~GUEST_SEG_UNUSABLE_MASK)
    else:
        s.w(GUEST_AR("ss"), ar_saved | GUEST_SEG_UNUSABLE_MASK)
    usable = not s.r(GUEST_AR("ss")) & GUEST_SEG_UNUSABLE_MASK
    ss("guest-sel-ss-rpl-mismatch-urg-toggled", bad, True, usable, True)
    ss("guest-sel-ss-rpl-match-urg-toggled", good, True, usable, True)
    s.w(GUEST_AR("ss"), ar_saved)
    s.w(GUEST_SEL("ss"), sel_saved)
    s.w(CPU0, cpu0_saved)
    s.w(CPU1, cpu1_saved)
    # EPTP keeps setup_ept()'s value


def test_guest_segment_base_addr_fields(s):
    s.at("test_guest_segment_base_addr_fields", "5831-5857, 8540-8625", "guest segments")
    k_canon = cpu("27.3.1.2", "the TR, FS and GS base addresses, and LDTR's if LDTR is usable, must be canonical")
    k_upper = cpu("27.3.1.2", "bits 63:32 of the CS base address, and of the SS, DS and ES base addresses of "
                              "usable segments, must be 0")

    def canonical(seg, xfail, tag):
        saved = s.r(GUEST_BASE(seg))
        s.w(GUEST_BASE(seg), NONCANONICAL)
        c = f"GUEST_BASE_{seg.upper()} = NONCANONICAL"
        if xfail:
            s.exit33(tag, c, k_canon, "hw:ldtr" if seg == "ldtr" else "hw:other", "cpu")
        else:
            s.valid(tag, c, "an unusable LDTR's base is not checked")
        s.w(GUEST_BASE(seg), saved)

    def upper(seg, xfail, tag):
        saved = s.r(GUEST_BASE(seg))
        for i in range(32, 63, 4):
            s.w(GUEST_BASE(seg), saved | 1 << i)
            c = f"GUEST_BASE_{seg.upper()} = saved | (1ull << {i})"
            if xfail:
                s.exit33(f"{tag}-bit{i}", c, k_upper, "hw:other", "cpu")
            else:
                s.valid(f"{tag}-bit{i}", c, "an unusable segment's base is not checked")
        s.w(GUEST_BASE(seg), saved)

    canonical("tr", True, "guest-base-tr-noncanonical")
    canonical("fs", True, "guest-base-fs-noncanonical")
    canonical("gs", True, "guest-base-gs-noncanonical")
    ar_saved = s.r(GUEST_AR("ldtr"))
    s.w(GUEST_AR("ldtr"), ar_saved | GUEST_SEG_UNUSABLE_MASK)
    canonical("ldtr", False, "guest-base-ldtr-unusable-noncanonical")
    s.w(GUEST_AR("ldtr"), ar_saved & ~GUEST_SEG_UNUSABLE_MASK)
    canonical("ldtr", True, "guest-base-ldtr-usable-noncanonical")
    s.w(GUEST_AR("ldtr"), ar_saved)
    upper("cs", True, "guest-base-cs-upper")
    for seg in ("ss", "ds", "es"):
        ar_saved = s.r(GUEST_AR(seg))
        s.w(GUEST_AR(seg), ar_saved | GUEST_SEG_UNUSABLE_MASK)
        upper(seg, False, f"guest-base-{seg}-unusable-upper")
        s.w(GUEST_AR(seg), ar_saved & ~GUEST_SEG_UNUSABLE_MASK)
        upper(seg, True, f"guest-base-{seg}-usable-upper")
        s.w(GUEST_AR(seg), ar_saved)


# --- other tests of x86/vmx_tests.c that assert a VM-entry consistency outcome ---------------

def init_32bit(s, cr3, pdpt):
    """vmx_32bit_guest_init_common(cr3, pdpt)."""
    s.w(ENT, s.r(ENT) & ~ENT_GUEST_64)
    s.w(GUEST_EFER, s.r(GUEST_EFER) & ~(x86.EFER_LMA | x86.EFER_LME))
    s.w(GUEST_AR_CS, 0xC09B)
    s.w(GUEST_CR0, s.r(GUEST_CR0) | x86.X86_CR0_PG | x86.X86_CR0_PE)
    cr4 = s.r(GUEST_CR4) & ~(x86.X86_CR4_PCIDE | x86.X86_CR4_PAE | x86.X86_CR4_PSE)
    s.w(GUEST_CR4, cr4 | (x86.X86_CR4_PAE if pdpt else x86.X86_CR4_PSE))
    s.w(GUEST_CR3, cr3)
    if pdpt:        # written whenever the CPU supports EPT, used only with EPT on
        for i in range(4):
            s.w(GUEST_PDPTE(i), pdpt[i])


def guest_pdptes(s, cr3, pdpt, in_memory, slug):
    """test_vmx_guest_pdptes()"""
    guest_efer = s.r(GUEST_EFER)
    k_cr3 = kvm(PREP + " -> nested_vmx_load_cr3()", "CC(!kvm_vcpu_is_legal_cr3(vcpu, cr3)) -> ENTRY_FAIL_DEFAULT")
    if in_memory:
        k_pdpte = kvm(PREP + " -> nested_vmx_load_cr3()",
                      "reload_pdptrs && !nested_ept && is_pae_paging(vcpu): CC(!load_pdptrs(vcpu, cr3)) -> "
                      "ENTRY_FAIL_PDPTE")
        m_pdpte, decided = "vmx.prep.load_cr3.pdptrs", "kvm"
    else:
        k_pdpte = (f"{SDM} 27.3.1.6 (with EPT and PAE paging the CPU checks the PDPTE fields of vmcs02: a present "
                   "PDPTE may set no reserved bit; exit qualification 2): nested_vmx_load_cr3() does not read "
                   "them with nested EPT and prepare_vmcs02() copies vmcs12's GUEST_PDPTRn into vmcs02" + REFLECT)
        m_pdpte, decided = "hw:pdpte", "cpu"

    def write_pdpt():
        if in_memory:
            for i in range(4):
                s.mem[PAE_PDPT + 8 * i] = pdpt[i]

    init_32bit(s, cr3, pdpt)
    write_pdpt()
    s.valid(f"{slug}-baseline", f"vmx_32bit_guest_init_common(cr3 = {cr3:#x}, pdpt)")
    for b in range(5):
        init_32bit(s, cr3 | 1 << b, pdpt)
        s.valid(f"{slug}-cr3-ignored-bit{b}", f"GUEST_CR3 = {cr3 | 1 << b:#x}",
                "PAE CR3 bits 4:0 are ignored: the PDPT is at CR3 & ~0x1f")
    for b in range(M, 64):
        init_32bit(s, cr3 | 1 << b, pdpt)
        s.exit33(f"{slug}-cr3-rsvd-bit{b}", f"GUEST_CR3 = cr3 | (1ull << {b})", k_cr3,
                 "vmx.prep.load_cr3.check_legal")
    init_32bit(s, cr3, pdpt)
    for i in range(4):
        orig = pdpt[i]
        for b in range(52, 64):
            if b == 63:
                s.w(GUEST_EFER, guest_efer & ~x86.EFER_NX)
            pdpt[i] = orig | 1 << b
            init_32bit(s, cr3, pdpt)
            write_pdpt()
            s.exit33(f"{slug}-pdpte{i}-rsvd-bit{b}",
                     f"PDPTE{i} = {pdpt[i]:#x}" + ("; GUEST_EFER &= ~NX" if b == 63 else ""),
                     k_pdpte, m_pdpte, decided, qual=d.ENTRY_FAIL_PDPTE)
            if b == 63:
                s.w(GUEST_EFER, guest_efer)
        for b in range(9, 12):
            pdpt[i] = orig | 1 << b
            init_32bit(s, cr3, pdpt)
            write_pdpt()
            s.valid(f"{slug}-pdpte{i}-ignored-bit{b}", f"PDPTE{i} = {pdpt[i]:#x}")
        pdpt[i] = orig
        write_pdpt()
    init_32bit(s, cr3, pdpt)


def vmx_pae_test(out):
    s = Sim(out, "vmx_pae_test", "5927-5955", "guest CR3 and PDPTEs", [P_ENV, P_GUEST], valid="l2")
    s.launched = True       # test_setup_32bit() has entered the 64-bit guest once
    s.at("test_vmx_guest_pdptes (PDPTEs from CR3)", "318-354, 5831-5925", "guest CR3 and PDPTEs")
    pdpt = [(PAE_PD + 0x1000 * i) | x86.PT_PRESENT_MASK for i in range(4)]
    guest_pdptes(s, PAE_PDPT, pdpt, True, "pae-cr3")
    s.mem.clear()
    s.at("test_vmx_guest_pdptes (PDPTEs from the VMCS, EPT on)", "318-354, 1201-1221, 5831-5955")
    setup_ept(s, EPT_PML4)
    pdpt = [(PAE_PD + 0x1000 * i) | x86.PT_PRESENT_MASK for i in range(4)]
    guest_pdptes(s, 0x01234560, pdpt, False, "pae-ept")


def vmx_pse_test(out):
    s = Sim(out, "vmx_pse_test", "5961-5988", "guest CR3 and PDPTEs", [P_ENV, P_GUEST], valid="l2")
    s.launched = True
    s.at("CR3 loops", "318-354, 5831-5857, 5961-5988")
    cr3 = PSE_PD
    init_32bit(s, cr3, None)
    s.valid("pse-baseline", f"vmx_32bit_guest_init_common(cr3 = {cr3:#x}, NULL): CR4.PSE, no PAE")
    for b in range(12):
        if b in (3, 4):
            continue
        init_32bit(s, cr3 | 1 << b, None)
        s.valid(f"pse-cr3-ignored-bit{b}", f"GUEST_CR3 = {cr3 | 1 << b:#x}")
    for b in range(M, 64):
        init_32bit(s, cr3 | 1 << b, None)
        s.exit33(f"pse-cr3-rsvd-bit{b}", f"GUEST_CR3 = cr3 | (1ull << {b})",
                 kvm(PREP + " -> nested_vmx_load_cr3()", "CC(!kvm_vcpu_is_legal_cr3(vcpu, cr3)) -> ENTRY_FAIL_DEFAULT"),
                 "vmx.prep.load_cr3.check_legal",
                 notes="KVM checks the whole CR3 against MAXPHYADDR in any paging mode")


def vmentry_unrestricted_guest_test(out):
    s = Sim(out, "vmentry_unrestricted_guest_test", "8709-8726", "unrestricted guest", [P_ENV, P_GUEST], valid="l2")
    s.at("setup_unrestricted_guest > test_guest_state", "1236-1252, 5831-5857, 8695-8726")
    setup_ept(s, EPT_PML4)
    s.w(CPU1, s.r(CPU1) | CPU_URG)
    s.w(GUEST_CR0, s.r(GUEST_CR0) & ~x86.X86_CR0_PG)
    s.w(ENT, s.r(ENT) & ~ENT_GUEST_64)
    s.w(GUEST_EFER, s.r(GUEST_EFER) & ~x86.EFER_LMA)
    s.valid("urg-protected-mode-no-paging", "unrestricted guest; GUEST_CR0 &= ~PG; ENT_GUEST_64 off; "
                                            "GUEST_EFER &= ~LMA",
            "CR0.PG = 0 is allowed with unrestricted guest (nested_guest_cr0_valid() drops PE and PG from "
            "fixed0); EFER.LME may stay set while paging is off")


def vmentry_movss_shadow_test(out):
    s = Sim(out, "vmentry_movss_shadow_test", "8783-8821", "MOV-SS shadow", [P_ENV], valid="l2")
    s.at("try_vmentry_in_movss_shadow", "8738-8821")
    s.w(GUEST_RFLAGS, 0)
    # enter_guest() ran v2_null_test_guest once, so vmcs12 is launched; the asm executes VMLAUNCH
    s.extra.update({"l1.mov_ss_blocking": True, "vmcs12.launch_state": 1})
    s.vmfail("movss-valid-vmcs", "MOV SS; VMLAUNCH of the launched current VMCS",
             d.VMXERR_ENTRY_EVENTS_BLOCKED_BY_MOV_SS,
             kvm("nested_vmx_run()", "CC(interrupt_shadow & KVM_X86_SHADOW_INT_MOV_SS) -> "
                                     "nested_vmx_fail(vcpu, VMXERR_ENTRY_EVENTS_BLOCKED_BY_MOV_SS)"),
             "vmx.run.check_mov_ss",
             "events blocked by MOV SS take precedence over 'VMLAUNCH with non-clear VMCS' (error 4)")
    s.extra["l1.current_vmptr"] = h(d.INVALID_GPA)
    s.emit("movss-no-current-vmcs", "VMCLEAR of the current VMCS; MOV SS; VMLAUNCH", "vmfail_invalid", None,
           kvm("nested_vmx_run()", "CC(!nested_vmx_is_evmptr12_valid(vmx) && vmx->nested.current_vmptr == "
                                   "INVALID_GPA) -> nested_vmx_failInvalid()"),
           "vmx.run.check_current_vmcs", "kvm", "VMfailInvalid takes precedence over the MOV-SS shadow")


def msr_switch_test(out):
    s = Sim(out, "'MSR switch' (v1: msr_switch_init/msr_switch_main/msr_switch_exit_handler)", "2089-2155",
            "VM-entry MSR-load list", [P_ENV, P_GUEST], valid="l2")
    s.at("msr_switch_init", "370-380, 2089-2119")
    s.w(CPU0, s.r(CPU0) | CPU_MSR_BITMAP)
    s.w(MSR_BITMAP, MSR_BITMAP_PAGE)
    s.mem[ENTRY_MSR_PAGE] = d.MSR_KERNEL_GS_BASE
    s.mem[ENTRY_MSR_PAGE + 8] = MSR_MAGIC
    for cnt, addr, page in ((ENT_MSR_LD_CNT, ENTER_MSR_LD_ADDR, ENTRY_MSR_PAGE),
                            (EXI_MSR_ST_CNT, EXIT_MSR_ST_ADDR, EXIT_MSR_STORE_PAGE),
                            (EXI_MSR_LD_CNT, EXIT_MSR_LD_ADDR, EXIT_MSR_LOAD_PAGE)):
        s.w(cnt, 1)
        s.w(addr, page)
    s.valid("msr-switch-entry-load-kernel-gs-base", "VM-entry MSR-load list: {MSR_KERNEL_GS_BASE, MSR_MAGIC}",
            "the guest then checks that MSR_KERNEL_GS_BASE holds MSR_MAGIC")
    s.at("msr_switch_main / msr_switch_exit_handler / msr_switch_entry_failure", "2108-2155")
    s.mem[EXIT_MSR_STORE_PAGE] = d.MSR_KERNEL_GS_BASE
    s.mem[EXIT_MSR_LOAD_PAGE] = d.MSR_KERNEL_GS_BASE
    s.mem[EXIT_MSR_LOAD_PAGE + 8] = MSR_MAGIC + 2
    s.mem[ENTRY_MSR_PAGE] = d.MSR_FS_BASE
    s.emit("msr-switch-entry-load-fs-base", "entry_msr_load[0].index = MSR_FS_BASE; VMRESUME", "vmexit:34", 1,
           kvm("nested_vmx_enter_non_root_mode() -> nested_vmx_load_msr() -> nested_vmx_load_msr_check()",
               "CC(e->index == MSR_FS_BASE) -> exit 34, qualification 1"), "vmx.enter.load_msr")


def invalid_msr_test(out):
    s = Sim(out, "'invalid msr' (v1: invalid_msr_init/invalid_msr_entry_failure)", "11015-11053",
            "VM-entry MSR-load list", [P_ENV, P_GUEST, P_MEM0], valid="l2")
    s.at("invalid_msr_init / invalid_msr_entry_failure", "11015-11053")
    s.w(PIN, s.r(PIN) | PIN_PREEMPT)
    s.w(ENT_MSR_LD_CNT, 1)
    s.w(ENTER_MSR_LD_ADDR, 0x13370000)
    s.emit("invalid-msr-load-0x13370000", "PIN_CONTROLS |= PIN_PREEMPT; ENT_MSR_LD_CNT = 1; "
                                          "ENTER_MSR_LD_ADDR = 0x13370000", "vmexit:34", 1,
           kvm("nested_vmx_enter_non_root_mode() -> nested_vmx_load_msr()",
               "kvm_vcpu_read_guest() of an entry beyond kvm-unit-tests' 128 MiB fails (in the model's 4 GiB "
               "it reads zeroes: MSR 0, which kvm_emulate_msr_write() cannot write): goto fail, return 1"),
           "vmx.enter.load_msr",
           notes="the preemption-timer value (10000000) the C code writes is not a field of the model and does "
                 "not matter: the timer starts only after a successful entry")


def atomic_switch_msrs_tests(out):
    for count, name, lines in ((MAX_MSR_LIST, "atomic_switch_max_msrs_test", "11094-11170"),
                               (MAX_MSR_LIST + 1, "atomic_switch_overflow_msrs_test", "11094-11165, 11172-11178")):
        s = Sim(out, name, lines, "VM-entry MSR-load list", [P_ENV, P_GUEST], valid="l2")
        s.at("atomic_switch_msrs_test", "11094-11165")
        exit_count = min(count, MAX_MSR_LIST)
        entry, exit_load, exit_store = ATOMIC_LISTS
        s.w(ENTER_MSR_LD_ADDR, entry)
        s.w(EXIT_MSR_LD_ADDR, exit_load)
        s.w(EXIT_MSR_ST_ADDR, exit_store)
        s.w(ENT_MSR_LD_CNT, count)
        s.w(EXI_MSR_LD_CNT, exit_count)
        s.w(EXI_MSR_ST_CNT, exit_count)
        c = (f"{count} entries {{MSR_IA32_TSC, 0x1234567890abcdef}} in the VM-entry MSR-load list; "
             f"{exit_count} in the VM-exit lists")
        if count <= MAX_MSR_LIST:
            for i in range(count):
                s.mem[entry + 16 * i] = MSR_IA32_TSC
                s.mem[entry + 16 * i + 8] = 0x1234567890ABCDEF
            s.valid("atomic-switch-max-msrs", c,
                    "only the VM-entry list is in the record's memory: the exit lists are read at VM exit "
                    "(and the exit-store list by prepare_vmcs02_rare() for the TSC auto-store slot)")
        else:
            s.vmfail("atomic-switch-overflow-msrs", c, 7,
                     kvm(ENTRYC + " -> nested_vmx_check_entry_msr_switch_controls() -> "
                                  "nested_vmx_check_msr_switch()",
                         "count > nested_vmx_max_atomic_switch_msrs(vcpu) -> -EINVAL"), "X22",
                     "kvm-unit-tests expects a VM-entry failure (test_guest_state(), exit qualification "
                     "max + 1) and [vmx] leaves this test out; KVM at the pinned commit refuses a count above "
                     "the maximum as a consistency check ('Exceeding the limit results in architecturally "
                     "_undefined_ behavior'): VMfail 7. The list contents are not read and are not in the record")


def vmx_canonical_test(out):
    feats = ",".join(sorted(KUT_L1_CPUID | {"LA57"}))
    s = Sim(out, "vmx_canonical_test", "11582-11600", "host canonical addresses (LA57)",
            [P_ENV, P_GUEST, "the test needs 5-level paging support (it skips otherwise): here L1's CPUID has "
                             "LA57 and so does KVM (kvm_cpu_cap_has(X86_FEATURE_LA57)); L1 itself runs with "
                             "4-level paging (CR4.LA57 = 0)"],
            valid="l2", extra={"cpu.features": feats})
    s.at("do_vmx_canonical_test_one_field > test_host_value_vmcs", "11538-11600")
    for name in ("HOST_SYSENTER_ESP", "HOST_SYSENTER_EIP", "HOST_BASE_FS", "HOST_BASE_GDTR", "HOST_BASE_IDTR",
                 "HOST_BASE_TR"):
        field = {"HOST_SYSENTER_ESP": HOST_SYSENTER_ESP, "HOST_SYSENTER_EIP": HOST_SYSENTER_EIP}.get(
            name, HOST_BASE(name.split("_")[-1].lower()))
        saved = s.r(field)
        s.w(field, 0xFF55555555000000)
        helper = "is_noncanonical_msr_address()" if "SYSENTER" in name else "is_noncanonical_base_address()"
        s.emit(f"la57-{name.lower().replace('_', '-')}", f"{name} = TEST_VMCS_VALUE (0xff55555555000000)",
               "l2_runs", None,
               kvm(HOSTC, f"{helper} checks at max_host_virt_addr_bits() = 57 (KVM has LA57): 0xff55555555000000 "
                          "is canonical there (not at 48 bits), so nothing fails"), None, "kvm")
        s.w(field, saved)
        # HOST_BASE_GS is skipped by the C code (the test's per-CPU data lives at GS)


def vmx_cet_test(out):
    feats = ",".join(sorted(KUT_L1_CPUID | {"SHSTK", "IBT"}))
    s = Sim(out, "vmx_cet_test", "12006-12075", "CET state",
            [P_ENV, P_GUEST, "the test assumes L1 has CET whenever KVM offers the load-CET controls (a -cpu max "
                             "guest on a CET host): here L1's CPUID has SHSTK and IBT"],
            valid="l2", extra={"cpu.features": feats})
    s.at("vmx_cet_test", "370-380, 12006-12075")
    s.w(CPU0, s.r(CPU0) | CPU_MSR_BITMAP)
    s.w(MSR_BITMAP, MSR_BITMAP_PAGE)
    s.w(HOST_S_CET, 2)
    s.w(GUEST_S_CET, 2)
    s.valid("cet-load-off", "HOST_S_CET = GUEST_S_CET = 2; load-CET controls off")
    s.w(EXI, s.r(EXI) | EXI_LOAD_CET)
    s.w(ENT, s.r(ENT) | ENT_LOAD_CET)
    s.w(GUEST_S_CET, 2)
    s.valid("cet-load-on", "EXI_LOAD_CET and ENT_LOAD_CET on; GUEST_S_CET = 2")
    val = (1 << 10) | (1 << 11)
    s.w(GUEST_S_CET, val)
    s.exit33("cet-guest-s-cet-suppress-tracker", "GUEST_S_CET = BIT(10) | BIT(11)",
             kvm(GUESTC, "vm_entry_controls & VM_ENTRY_LOAD_CET_STATE: nested_vmx_check_cet_state_common(): "
                         "CC(!kvm_is_valid_u_s_cet(vcpu, s_cet)) (SUPPRESS and WAIT_ENDBR together)"), "G8c")
    s.launched = False      # vmcs_clear() + make_vmcs_current(): the VMCS is clear again
    s.w(HOST_S_CET, val)
    s.vmfail("cet-host-s-cet-suppress-tracker", "VMCLEAR; VMPTRLD; HOST_S_CET = BIT(10) | BIT(11); VMLAUNCH", 8,
             kvm(HOSTC, "vm_exit_controls & VM_EXIT_LOAD_CET_STATE: nested_vmx_check_cet_state_common(): "
                        "CC(!kvm_is_valid_u_s_cet(vcpu, s_cet))"), "H11",
             "host state is checked before guest state, so the still-invalid GUEST_S_CET does not matter")


APIC_REG_TESTS = (      # apic_reg_tests[]: name, VAA, TPR shadow, APIC-register virt., x2APIC mode, secondary
    ("Virtualize APIC accesses", 1, 0, 0, 0, 1),
    ("Virtualize APIC accesses + Use TPR shadow", 1, 1, 0, 0, 1),
    ("APIC-register virtualization", 1, 1, 1, 0, 1),
    ("Activate secondary controls off", 1, 0, 1, 1, 0),
    ("Activate secondary controls off + Use TPR shadow", 1, 1, 1, 1, 0),
    ("Virtualize APIC accesses off + Use TPR shadow", 0, 1, 1, 1, 1),
    ("APIC-register virtualization + Use TPR shadow off", 1, 0, 1, 0, 1),
    ("Virtualize x2APIC mode + Use TPR shadow off", 0, 0, 0, 1, 1),
    ("Virtualize x2APIC mode + Use TPR shadow off v2", 0, 0, 1, 1, 1),
    ("Virtualize x2APIC mode + Virtualize APIC accesses", 1, 1, 0, 1, 1),
    ("Virtualize x2APIC mode + Virtualize APIC accesses v2", 1, 1, 1, 1, 1),
)
VIRT_X2APIC_MODE_TESTS = (   # virt_x2apic_mode_tests[]: name, VID, MSR bitmaps, L1 x2APIC off, then as above
    ("Baseline", 1, 1, 0, (0, 1, 1, 1, 1)),
    ("Baseline w/ x2apic disabled", 1, 1, 1, (0, 1, 1, 1, 1)),
    ("Baseline - virtual interrupt delivery", 0, 1, 0, (0, 1, 1, 1, 1)),
    ("Virtualize x2APIC mode, no APIC reg virt", 1, 1, 0, (0, 1, 0, 1, 1)),
    ("Virtualize x2APIC mode, no APIC reg virt, x2APIC off", 1, 1, 1, (0, 1, 0, 1, 1)),
    ("Fail to enable activate secondary controls", 1, 1, 0, (0, 1, 1, 1, 0)),
    ("Fail to enable virtualize x2APIC mode", 1, 1, 0, (0, 1, 1, 0, 1)),
    ("Baseline (x2APIC mode off)", 1, 1, 0, (0, 1, 1, 0, 1)),
)


def configure_apic_reg_virt(s, vaa, tpr, regvirt, x2apic, secondary):
    """configure_apic_reg_virt_test(): returns True when 'L2 entry fails early'."""
    tpr_off = not tpr and (regvirt or x2apic) and secondary
    vaa_on = vaa and x2apic and secondary
    cpu0, cpu1 = s.r(CPU0), s.r(CPU1)
    cpu0 = cpu0 | CPU_SECONDARY if secondary else cpu0 & ~CPU_SECONDARY
    cpu1 = cpu1 | CPU_VIRT_APIC_ACCESSES if vaa else cpu1 & ~CPU_VIRT_APIC_ACCESSES
    cpu0 = cpu0 | CPU_TPR_SHADOW if tpr else cpu0 & ~CPU_TPR_SHADOW
    cpu1 = cpu1 | CPU_APIC_REG_VIRT if regvirt else cpu1 & ~CPU_APIC_REG_VIRT
    cpu1 = cpu1 | CPU_VIRT_X2APIC if x2apic else cpu1 & ~CPU_VIRT_X2APIC
    s.w(CPU0, cpu0)
    s.w(CPU1, cpu1)
    return bool(tpr_off or vaa_on), bool(vaa_on)


K_X2APIC_VAA = kvm(EXEC + " -> nested_vmx_check_apicv_controls()",
                   "CC(nested_cpu_has_virt_x2apic_mode(vmcs12) && nested_cpu_has2(vmcs12, "
                   "SECONDARY_EXEC_VIRTUALIZE_APIC_ACCESSES))")


def apic_reg_virt_test(out):
    s = Sim(out, "apic_reg_virt_test", "6677-6754", "APIC virtualization (apicv tests)",
            [P_ENV, P_GUEST, "config [vmx_apicv_test]; each configuration's first VM entry stands for the "
                             "many the C code makes with it (only the guest's arguments change)"], valid="l2")
    s.at("configure_apic_reg_virt_test", "6245-6385, 6591-6754")
    s.w(CPU1, s.r(CPU1) & ~CPU_VINTD)
    s.w(APIC_ACCS_ADDR, APIC_ACCESS_PAGE)
    s.w(APIC_VIRT_ADDR, VIRTUAL_APIC_PAGE)
    for i, (name, vaa, tpr, regvirt, x2apic, secondary) in enumerate(APIC_REG_TESTS):
        fails, vaa_on = configure_apic_reg_virt(s, vaa, tpr, regvirt, x2apic, secondary)
        c = f"apic_reg_tests[{i}] '{name}': CPU_EXEC_CTRL0 = {s.r(CPU0):#x}, CPU_EXEC_CTRL1 = {s.r(CPU1):#x}"
        if fails:
            s.vmfail(f"apic-reg-virt-config{i}", c + " (enter_guest_with_bad_controls())", 7,
                     K_X2APIC_VAA if vaa_on else K_APICV_TPR, "X9" if vaa_on else "X9d")
        else:
            s.valid(f"apic-reg-virt-config{i}", c)


def virt_x2apic_mode_test(out):
    s = Sim(out, "virt_x2apic_mode_test", "7452-7536", "APIC virtualization (apicv tests)",
            [P_ENV, P_GUEST, "config [vmx_apicv_test]; each configuration's first VM entry stands for the "
                             "many the C code makes with it; L1's own APIC mode (x2APIC on or off) and the "
                             "MSR bitmap's contents do not enter KVM's checks"], valid="l2")
    s.at("configure_virt_x2apic_mode_test", "6591-6659, 6973-7143, 7403-7536")
    s.w(APIC_VIRT_ADDR, VIRTUAL_APIC_PAGE)
    s.w(MSR_BITMAP, MSR_BITMAP_PAGE)
    for i, (name, vid, msr_bitmaps, x2apic_off, cfg) in enumerate(VIRT_X2APIC_MODE_TESTS):
        s.w(CPU0, s.r(CPU0) | CPU_MSR_BITMAP if msr_bitmaps else s.r(CPU0) & ~CPU_MSR_BITMAP)
        s.w(CPU1, s.r(CPU1) | CPU_VINTD if vid else s.r(CPU1) & ~CPU_VINTD)
        fails, _ = configure_apic_reg_virt(s, *cfg)
        assert not fails
        s.valid(f"virt-x2apic-mode-config{i}",
                f"virt_x2apic_mode_tests[{i}] '{name}' (L1 x2APIC {'off' if x2apic_off else 'on'}): "
                f"CPU_EXEC_CTRL0 = {s.r(CPU0):#x}, CPU_EXEC_CTRL1 = {s.r(CPU1):#x}",
                "virtual-interrupt delivery needs external-interrupt exiting, which init_vmcs() sets" if vid else "")


# --- the whole list -----------------------------------------------------------------------------

def build_cases():
    out = []
    vmx_controls_test(out)
    apic_reg_virt_test(out)
    virt_x2apic_mode_test(out)
    vmx_host_state_area_test(out)
    vmx_guest_state_area_test(out)
    vmx_pae_test(out)
    vmx_pse_test(out)
    vmentry_unrestricted_guest_test(out)
    vmentry_movss_shadow_test(out)
    msr_switch_test(out)
    invalid_msr_test(out)
    atomic_switch_msrs_tests(out)
    vmx_canonical_test(out)
    vmx_cet_test(out)
    ids = [c["id"] for c in out]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    assert not dup, f"duplicate case ids: {dup[:5]}"
    return out


def write(path=DATA):
    cases = build_cases()
    with gzip.GzipFile(path, "wb", mtime=0) as f:               # the same cases give the same bytes
        f.write("".join(json.dumps(c) + "\n" for c in cases).encode())
    return cases


if __name__ == "__main__":
    print(f"{len(write())} cases -> {DATA}")

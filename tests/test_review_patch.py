"""review-patch: a posted diff in, the calls it moves, the rules that breaks, and a verdict out.

Small patches written for these tests move, rewrite in place and add code, against both ISAs;
nsvm_model/posted/ holds v6 11-16 of "Nested SVM fixes, cleanups, and hardening" (the diffs
only, each citing its Message-ID), reviewed end to end."""

import subprocess
import sys
from pathlib import Path

import pytest

from nsvm_model.patches import review_patches
import nsvm_model as nm

ROOT = Path(__file__).resolve().parents[1]
POSTED = sorted((ROOT / "nsvm_model" / "posted").glob("v6-*.patch"))
SVM = "arch/x86/kvm/svm/nested.c"
VMX = "arch/x86/kvm/vmx/nested.c"


def diff(path, *hunks, subject="[PATCH] test"):
    return f"Subject: {subject}\n\n--- a/{path}\n+++ b/{path}\n" + "".join(hunks)


# init_mmu_context above enter_guest_mode inside nested_vmcb02_prepare_control(): R14
MOVE_MMU_UP = diff(SVM, """@@ -740,9 +740,9 @@ static void nested_vmcb02_prepare_control(struct vcpu_svm *svm,
 \tnested_svm_transition_tlb_flush(vcpu);
 
+\tif (nested_npt_enabled(svm))
+\t\tnested_svm_init_mmu_context(vcpu);
+
 \tenter_guest_mode(vcpu);
 
-\tif (nested_npt_enabled(svm))
-\t\tnested_svm_init_mmu_context(vcpu);
-
 \tvcpu->arch.tsc_offset = 0;
""", subject="[PATCH] KVM: nSVM: init the nested MMU first")

# the same call, rewritten where it is: a return value and a negation
IN_PLACE = diff(SVM, """@@ -1040,5 +1040,5 @@ int nested_svm_vmrun(struct kvm_vcpu *vcpu)
 \tif (enter_svm_guest_mode(vcpu, vmcb12_gpa, vmcb12, true))
 \t\tgoto out_exit_err;
 
-\tif (nested_svm_merge_msrpm(vcpu))
+\tif (!nested_svm_merge_msrpm(vcpu))
 \t\tgoto out;
""", """@@ -276,3 +276,3 @@ int __init nested_svm_init_msrpm_merge_offsets(void)
  */
-static bool nested_svm_merge_msrpm(struct kvm_vcpu *vcpu)
+static int nested_svm_merge_msrpm(struct kvm_vcpu *vcpu)
 {
""", subject="[PATCH] KVM: nSVM: return an errno")

ADDS_A_FUNCTION = diff(SVM, """@@ -979,4 +979,9 @@ int enter_svm_guest_mode(struct kvm_vcpu *vcpu, u64 vmcb12_gpa,
 \treturn 0;
 }
 
+static void nested_svm_say_hello(struct vcpu_svm *svm)
+{
+\tsvm->nested.hello = 1;
+}
+
 int nested_svm_vmrun(struct kvm_vcpu *vcpu)
""", subject="[PATCH] KVM: nSVM: a helper")

# switch to vmcs02 only after entering guest mode: nVMX's own order rules see it
VMX_MOVE = diff(VMX, """@@ -3500,8 +3500,8 @@ enum nvmx_vmentry_status nested_vmx_enter_non_root_mode(struct kvm_vcpu *vcpu,
-\tvmx_switch_vmcs(vcpu, &vmx->nested.vmcs02);
-
 \tprepare_vmcs02_early(vmx, &vmx->vmcs01, vmcs12);
 
 \tenter_guest_mode(vcpu);
 
+\tvmx_switch_vmcs(vcpu, &vmx->nested.vmcs02);
+
 \tif (prepare_vmcs02(vcpu, vmcs12, from_vmentry, &entry_failure_code)) {
""", subject="[PATCH] KVM: nVMX: switch later")

# a context no variant has: enter_guest_mode() taken out of nested_svm_vmexit()
NO_BASE = diff(SVM, """@@ -1200,3 +1200,2 @@ void nested_svm_vmexit(struct vcpu_svm *svm)
 \tleave_guest_mode(vcpu);
-\tenter_guest_mode(vcpu);
 \tsvm_switch_vmcb(svm, &svm->vmcb01);
""")


def test_a_move_is_named_replayed_and_judged():
    r = review_patches([MOVE_MMU_UP])
    (v,) = r.patches
    (m,) = v.reading.moves
    assert (m.call, m.source, m.target, m.entry, m.before) == (
        "nested_svm_init_mmu_context", "nested_vmcb02_prepare_control", "nested_vmcb02_prepare_control",
        "svm.enter.init_mmu_context", "svm.enter.enter_guest_mode")
    seq = v.series.sequences["nested_vmcb02_prepare_control"]
    assert seq.index("svm.enter.init_mmu_context") < seq.index("svm.enter.enter_guest_mode")
    assert [x.id for x in v.broken_alone] == ["R14"] and v.verdict == "harmful by itself"
    assert "R14" in r.text() and "before enter_guest_mode()" in r.text()


def test_a_call_rewritten_in_place_and_a_new_signature_change_no_order():
    (v,) = review_patches([IN_PLACE]).patches
    assert v.reading.moves == [] and v.reading.unmodelled == [] and len(v.reading.unchanged) == 2
    assert v.verdict == "changes no order" and v.series is v.alone or v.series.sequences == v.alone.sequences
    assert v.broken_alone == [] and v.differing == []


def test_new_code_is_said_plainly_with_its_lines():
    (v,) = review_patches([ADDS_A_FUNCTION]).patches
    assert v.verdict == "not modelled"
    assert v.reading.unmodelled == ["hunk 1 (lines 979-982 (new 979-987)): adds nested_svm_say_hello(), "
                                    "a new function body the model cannot derive"]


def test_a_vmx_patch_is_read_against_the_vmx_flow():
    (v,) = review_patches([VMX_MOVE]).patches
    (m,) = v.reading.moves
    assert m.entry == "vmx.enter.switch_vmcs02" and m.before == "call:prepare_vmcs02"
    seq = v.series.sequences["nested_vmx_enter_non_root_mode"]
    assert seq.index("vmx.enter.enter_guest_mode") < seq.index("vmx.enter.switch_vmcs02")
    assert v.series.isa == "vmx" and v.verdict.startswith(("harmful", "harmless"))


@pytest.mark.parametrize("text, message", [
    ("just some words\n", "not a patch"),
    (diff("arch/x86/kvm/x86.c", "@@ -1,1 +1,1 @@\n-a\n+b\n"), "a patch for 'arch/x86/kvm/x86.c'"),
    (NO_BASE, "matches no svm variant"),
])
def test_bad_input_is_one_error_naming_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=message):
        review_patches([text], ["p.patch"])


def test_base_can_be_named_and_an_unknown_one_is_refused():
    assert review_patches([MOVE_MMU_UP], base="v6.6-order").base.name == "v6.6-order"
    with pytest.raises(ValueError, match="--base: unknown svm variant 'nope'"):
        review_patches([MOVE_MMU_UP], base="nope")


# --- the posted series -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def v6():
    assert [p.name for p in POSTED] == [f"v6-{n}.patch" for n in range(11, 17)]
    return review_patches([p.read_text() for p in POSTED], [p.name for p in POSTED], base="pre-gif-fix")


def test_every_posted_patch_cites_its_posting(v6):
    for v, n in zip(v6.patches, range(11, 17)):
        p = v.reading.patch
        assert p.subject.startswith(f"[PATCH v6 {n}/31] KVM: nSVM: ")
        assert p.message_id == f"20260224223405.3270433-{n + 1}-yosry@kernel.org"


def test_v6_names_the_moved_calls_of_each_patch(v6):
    moved = {v.reading.patch.name: [(m.call, m.target) for m in v.reading.moves] for v in v6.patches}
    assert moved["v6-11.patch"] == [("enter_guest_mode", "enter_svm_guest_mode")]
    assert moved["v6-12.patch"] == []
    assert moved["v6-13.patch"] == [("nested_svm_merge_msrpm", "enter_svm_guest_mode")]
    assert moved["v6-14.patch"] == [("nested_svm_init_mmu_context", "enter_svm_guest_mode")]
    assert {c for c, _ in moved["v6-16.patch"]} >= {"nested_vmcb_check_save", "nested_vmcb_check_controls",
                                                    "svm_switch_vmcb", "nested_vmcb02_prepare_save"}


def test_v6_verdicts_say_which_are_harmless_by_themselves(v6):
    verdict = {v.reading.patch.name: v.verdict for v in v6.patches}
    assert verdict["v6-12.patch"] == "changes no order"
    assert verdict["v6-13.patch"] == "harmless by itself"
    assert verdict["v6-14.patch"].startswith("harmful by itself, harmless on top of the earlier patches")
    assert verdict["v6-15.patch"] == "not modelled"
    assert verdict["v6-16.patch"].startswith("harmful (")


def test_v6_16_is_the_hand_built_unified_failure_path_and_breaks_cr3_and_msr_bitmap_rules(v6):
    last = v6.patches[-1]
    assert last.reading.hand_built is nm.machine_for("svm").flows["v6-unified"]
    broken = {r.id: r for r in last.broken_series}
    assert {"R18", "R21"} <= set(broken)
    assert "PDPTRs" in broken["R18"].symptom and "bitmap" in broken["R21"].symptom
    text = v6.text()
    assert "Symptom: PDPTRs loaded or skipped" in " ".join(text.split())
    assert "v6-unified" in text


def test_v6_text_is_mail_ready(v6):
    lines = v6.text().splitlines()
    assert max(map(len, lines)) <= 72
    assert lines[0].startswith("Base: pre-gif-fix")


def test_the_cli_reviews_the_series_and_refuses_bad_files(tmp_path):
    run = lambda *a: subprocess.run([sys.executable, "-m", "nsvm_model", "review-patch", *a], cwd=ROOT,
                                    capture_output=True, text=True)
    svg = tmp_path / "series.svg"
    ok = run("--base", "pre-gif-fix", *map(str, POSTED), "--svg", str(svg))
    assert ok.returncode == 0, ok.stderr
    assert "verdict: harmless by itself" in ok.stdout and "<svg" in svg.read_text()
    assert max(len(line) for line in ok.stdout.splitlines()) <= 72
    bad = run(str(ROOT / "README.md"))
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and bad.stderr.startswith("error: README.md: not a patch")


def test_the_series_becomes_orderings_that_cite_their_postings():
    from nsvm_model.patches import posted_variants
    flows = posted_variants()
    assert list(flows) == [f"v6-{n}" for n in range(11, 17)]
    assert "<20260224223405.3270433-14-yosry@kernel.org>" in flows["v6-13"].source
    assert flows["v6-16"] is nm.machine_for("svm").flows["v6-unified"]
    seq = flows["v6-14"].sequences["enter_svm_guest_mode"]
    assert seq.index("svm.enter.enter_guest_mode") < seq.index("svm.enter.init_mmu_context") \
        < seq.index("svm.enter.switch_vmcb02")
    assert nm.run(nm.Scenario.preset("svm", "teaching"), flows["v6-14"]).outcome == "l2_runs"
